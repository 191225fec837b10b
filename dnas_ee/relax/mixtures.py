"""Relaxed categorical and Bernoulli choices.

Every function takes the temperatures as (traced) arrays and the mode as a static
string, so annealing a temperature inside a jitted step never retraces it.
``hard=True`` is the zero-temperature limit: one-hot argmax mixtures, gates
``beta > 0`` and threshold steps ``c >= tau``; the relaxed cost at ``hard=True``
must equal the cost of the discrete network (tested).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

MIXTURE_MODES = ("softmax", "gumbel", "sampled")
GATE_MODES = ("sigmoid", "gumbel")


@dataclasses.dataclass(frozen=True)
class Relaxation:
  """How the architecture is relaxed in one forward pass (a pytree of scalars).

  Attributes:
    op_temperature: softmax temperature of op and bit-width mixtures, and of the
      exit gates (``sigmoid(beta / T)``: gates anneal towards on/off with the ops).
    threshold_temperature: ``t`` in ``sigmoid((c - tau) / t)``.
    hard: zero-temperature limit (static).
    mixture_mode: 'softmax' (DARTS: every candidate, weighted), 'gumbel'
      (Gumbel-softmax, needs ``rng``) or 'sampled' (single path: the forward pass
      runs one sampled candidate per choice, see ``sample_one_hot``) (static).
    gate_mode: 'sigmoid' or 'gumbel' (relaxed Bernoulli, needs ``rng``) (static).
  """
  op_temperature: jax.Array | float = 1.0
  threshold_temperature: jax.Array | float = 0.05
  hard: bool = dataclasses.field(default=False, metadata=dict(static=True))
  mixture_mode: str = dataclasses.field(default="softmax", metadata=dict(static=True))
  gate_mode: str = dataclasses.field(default="sigmoid", metadata=dict(static=True))


jax.tree_util.register_dataclass(
    Relaxation, data_fields=["op_temperature", "threshold_temperature"],
    meta_fields=["hard", "mixture_mode", "gate_mode"])


def mixture_probs(logits: jax.Array, relax: Relaxation, rng: jax.Array | None = None) -> jax.Array:
  """Mixture weights over the last axis of ``logits``."""
  if relax.hard:
    return jax.nn.one_hot(jnp.argmax(logits, axis=-1), logits.shape[-1], dtype=logits.dtype)
  if relax.mixture_mode == "gumbel":
    if rng is None:
      raise ValueError("mixture_mode='gumbel' needs an rng")
    logits = logits + jax.random.gumbel(rng, logits.shape, logits.dtype)
  elif relax.mixture_mode not in ("softmax", "sampled"):   # sampled: the cost's probabilities
    raise ValueError(f"unknown mixture_mode {relax.mixture_mode!r}; use one of {MIXTURE_MODES}")
  return jax.nn.softmax(logits / relax.op_temperature, axis=-1)


def exit_gates(beta: jax.Array, relax: Relaxation, rng: jax.Array | None = None) -> jax.Array:
  """``g_i``: relaxed "an exit is placed at position i"."""
  if relax.hard:
    return (beta > 0).astype(beta.dtype)
  if relax.gate_mode == "gumbel":
    if rng is None:
      raise ValueError("gate_mode='gumbel' needs an rng")
    u = jax.random.uniform(rng, beta.shape, beta.dtype, 1e-6, 1 - 1e-6)
    return jax.nn.sigmoid((beta + jnp.log(u) - jnp.log1p(-u)) / relax.op_temperature)
  if relax.gate_mode != "sigmoid":
    raise ValueError(f"unknown gate_mode {relax.gate_mode!r}; use one of {GATE_MODES}")
  return jax.nn.sigmoid(beta / relax.op_temperature)


def sample_one_hot(logits: jax.Array, temperature, rng: jax.Array) -> jax.Array:
  """A one-hot sample per row, with GDAS's straight-through Gumbel gradient.

  GDAS (Dong & Yang, CVPR 2019): the forward value is the one-hot Gumbel-max
  sample ``h = one_hot(argmax(logits + G))`` (an exact sample of
  ``softmax(logits)``), the backward pass is that of the Gumbel-softmax
  ``softmax((logits + G) / T)``. Multiplying the sampled candidate's output by
  ``h[k]`` (value exactly 1) routes the gradient to every logit through the
  softmax, while only candidate ``k`` runs. The estimator is biased (as every
  straight-through estimator); ``tests/core/test_sampled.py`` bounds the bias on
  a toy problem against the exact softmax-mode gradient.
  """
  gumbel = jax.random.gumbel(rng, logits.shape, logits.dtype)
  soft = jax.nn.softmax((logits + gumbel) / temperature, axis=-1)
  hard = jax.nn.one_hot(jnp.argmax(logits + gumbel, axis=-1), logits.shape[-1], dtype=logits.dtype)
  return hard + soft - jax.lax.stop_gradient(soft)


def sample_bernoulli(beta: jax.Array, temperature, rng: jax.Array) -> jax.Array:
  """On/off sample of ``sigmoid(beta)`` per entry, straight-through relaxed-Bernoulli gradient
  (the two-class case of ``sample_one_hot``)."""
  u = jax.random.uniform(rng, beta.shape, beta.dtype, 1e-6, 1 - 1e-6)
  noisy = beta + jnp.log(u) - jnp.log1p(-u)
  soft = jax.nn.sigmoid(noisy / temperature)
  hard = (noisy > 0).astype(beta.dtype)
  return hard + soft - jax.lax.stop_gradient(soft)


def soft_exit_decision(confidence: jax.Array, threshold: jax.Array, relax: Relaxation) -> jax.Array:
  """``s_i(x) = sigmoid((c_i(x) - tau_i) / t)``; the step ``c >= tau`` when hard."""
  if relax.hard:
    return (confidence >= threshold).astype(confidence.dtype)
  return jax.nn.sigmoid((confidence - threshold) / relax.threshold_temperature)
