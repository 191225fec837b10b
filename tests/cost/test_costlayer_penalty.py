"""The one-call penalty: equals an independent numpy expectation; gradients match finite differences."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnas_ee.cost import early_exit_cost

RNG = np.random.default_rng(0)
N, P, B, M = 4, 2, 5, 2
POSITIONS = (1, 3)
BACKBONE = RNG.uniform(1.0, 3.0, (N, M))
EXITS = RNG.uniform(0.2, 0.8, (P, M))


def numpy_expectation(soft, gates, backbone=BACKBONE, exits=EXITS, positions=POSITIONS):
  """Sums over every placement of the exits and every exit a sample can take (float64)."""
  n, p = len(backbone), len(exits)
  out = np.zeros((soft.shape[0], backbone.shape[1]))
  for placed in itertools.product([0, 1], repeat=p):
    p_placed = np.prod([g if on else 1 - g for g, on in zip(gates, placed)])
    for b in range(soft.shape[0]):
      still = 1.0
      for j in range(p + 1):   # leave at early exit j, or (j == p) at the final exit
        if j < p and not placed[j]:
          continue
        leave = still * soft[b, j] if j < p else still
        last_block = positions[j] if j < p else n
        cost = backbone[:last_block].sum(0) + sum(exits[i] for i in range(j + 1 if j < p else p)
                                                   if placed[i])
        out[b] += p_placed * leave * cost
        if j < p:
          still *= 1 - soft[b, j]
  return out


def test_equals_numpy_expectation_with_gates_and_positions():
  soft = RNG.uniform(0, 1, (B, P))
  logits = np.array([0.3, -1.2])
  got = early_exit_cost(BACKBONE, EXITS, exit_probs=soft, gate_logits=logits, positions=POSITIONS)
  want = numpy_expectation(soft, 1 / (1 + np.exp(-logits)))
  np.testing.assert_allclose(got.per_sample, want, rtol=1e-5)
  np.testing.assert_allclose(got.mean, want.mean(0), rtol=1e-5)
  np.testing.assert_allclose(got.leave.sum(1), 1.0, rtol=1e-6)


def test_default_chain_confidences_and_mixtures():
  backbone, exits = BACKBONE[:3], EXITS          # exits after segments 1 and 2
  conf = RNG.uniform(0, 1, (B, P))
  got = early_exit_cost(backbone, exits, confidences=conf, thresholds=np.array([0.5, 0.7]),
                        temperature=0.1)
  soft = 1 / (1 + np.exp(-(conf - [0.5, 0.7]) / 0.1))
  np.testing.assert_allclose(got.per_sample, numpy_expectation(soft, [1.0, 1.0], backbone, exits,
                                                               (1, 2)), rtol=1e-5)
  # Mixtures: costs per candidate [S, K, M] with probabilities [S, K] = expected costs.
  cand = RNG.uniform(1, 2, (3, 2, M))
  probs = np.array([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
  mixed = early_exit_cost(cand, exits, exit_probs=soft, backbone_mix=probs)
  plain = early_exit_cost(np.einsum("sk,skm->sm", probs, cand), exits, exit_probs=soft)
  np.testing.assert_allclose(mixed.mean, plain.mean, rtol=1e-6)


def test_gradients_match_finite_differences():
  soft = RNG.uniform(0.1, 0.9, (B, P))
  logits = np.array([0.4, -0.6])
  w = np.array([1.0, 0.5])    # a scalar loss over both metrics

  def loss_jax(s, g):
    return early_exit_cost(BACKBONE, EXITS, exit_probs=s, gate_logits=g,
                           positions=POSITIONS).mean @ w

  def loss_np(s, g):
    return numpy_expectation(s, 1 / (1 + np.exp(-g))).mean(0) @ w

  grad_s, grad_g = jax.grad(loss_jax, argnums=(0, 1))(jnp.asarray(soft), jnp.asarray(logits))
  eps = 1e-6
  for arr, grad, which in ((soft, grad_s, 0), (logits, grad_g, 1)):
    numeric = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
      up, down = arr.copy(), arr.copy()
      up[idx] += eps
      down[idx] -= eps
      args_up = (up, logits) if which == 0 else (soft, up)
      args_down = (down, logits) if which == 0 else (soft, down)
      numeric[idx] = (loss_np(*args_up) - loss_np(*args_down)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)
    assert np.abs(numeric).max() > 1e-3   # the check is not vacuous


def test_jit_and_vmap_safe():
  soft = jnp.asarray(RNG.uniform(0, 1, (3, B, P)), jnp.float32)
  fn = jax.jit(lambda s: early_exit_cost(BACKBONE, EXITS, exit_probs=s, positions=POSITIONS).mean)
  batched = jax.vmap(fn)(soft)
  for k in range(3):
    np.testing.assert_allclose(batched[k], fn(soft[k]), rtol=1e-6)


def test_errors_name_the_fix():
  with pytest.raises(ValueError, match="exactly one of exit_probs"):
    early_exit_cost(BACKBONE[:3], EXITS)
  with pytest.raises(ValueError, match=r"expected \[batch, 2\]"):
    early_exit_cost(BACKBONE[:3], EXITS, exit_probs=np.ones((B, 3)))
  with pytest.raises(ValueError, match="positions"):
    early_exit_cost(BACKBONE, EXITS, exit_probs=np.ones((B, P)), positions=(2, 1))


def test_cost_table_is_a_pytree():
  from dnas_ee.cost import CostTable
  table = CostTable(BACKBONE[:3], EXITS, ("latency_s", "energy_j"))
  fn = jax.jit(lambda t, s: early_exit_cost(t.backbone, t.exits, exit_probs=s).mean / t.static)
  soft = RNG.uniform(0, 1, (B, P))
  want = numpy_expectation(soft, [1.0, 1.0], BACKBONE[:3], EXITS, (1, 2)).mean(0)
  np.testing.assert_allclose(fn(table, soft), want / BACKBONE[:3].sum(0), rtol=1e-5)
