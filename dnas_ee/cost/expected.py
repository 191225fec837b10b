"""The expected cost of an early-exit network (docs/design.md), as pure jittable functions.

    E[C] = mean_x  sum_i  r_i(x) * ( B_i + g_i * A_i )

``B_i``: expected cost of backbone block i under its bit-width mixture;
``A_i``: expected cost of branch i under its op and bit-width mixtures;
``r_i(x)``: probability that sample x reaches position i; ``g_i``: exit gate.
All functions are jit-, grad- and vmap-safe and work on any metric vector
(MACs, bytes, latency, energy) on the last axis.

Example:
  >>> tables = build_cost_tables(space, ShapeCosts())
  >>> arch = relaxed_architecture(model, Relaxation())
  >>> conf = jnp.stack([confidence(l, "max_prob") for l in logits[:-1]], axis=1)
  >>> soft = soft_exit_decision(conf, thresholds, Relaxation())
  >>> e_c = expected_cost(tables, arch, soft, positions)  # [M]
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from dnas_ee.cost.tables import CostTables


def expected_block_costs(tables: CostTables, bit_probs: jax.Array) -> jax.Array:
  """``B``: [N, M] from backbone bit mixtures [N, nb]."""
  return jnp.einsum("nb,nbm->nm", bit_probs, tables.block)


def expected_branch_costs(tables: CostTables, op_probs: jax.Array, bit_probs: jax.Array) -> jax.Array:
  """``A``: [P, M] from slot op mixtures [P, D, K] and branch bit mixtures [P, nb].

  The width of a slot's input depends on earlier slots' choices, so the cost is
  the expectation over a small Markov chain of width states (exact, not an
  approximation: ops of different slots are chosen independently).
  """
  state = tables.init_state
  total = jnp.einsum("pb,pbm->pm", bit_probs, tables.branch_entry)
  for s in range(tables.slot.shape[1]):
    total += jnp.einsum("pk,pc,pb,pkcbm->pm", op_probs[:, s], state, bit_probs, tables.slot[:, s])
    state = jnp.einsum("pk,pc,pkcd->pd", op_probs[:, s], state, tables.transition[:, s])
  return total + jnp.einsum("pc,pb,pcbm->pm", state, bit_probs, tables.classifier)


def exit_probabilities(gates: jax.Array, soft_exit: jax.Array):
  """Reach and leave probabilities of every exit.

  Args:
    gates: [P] ``g_i``.
    soft_exit: [B, P] ``s_i(x)``.
  Returns:
    reach: [B, P] ``r_i(x)``, probability of reaching early exit i.
    leave: [B, P + 1] ``p_i(x)`` (last column: the final exit); rows sum to 1.
  """
  if gates.shape[0] == 0:   # no early exit: every sample leaves at the final one
    return soft_exit, jnp.ones((soft_exit.shape[0], 1), soft_exit.dtype)
  e = gates[None, :] * soft_exit
  survive = jnp.cumprod(1.0 - e, axis=1)
  reach = jnp.concatenate([jnp.ones_like(e[:, :1]), survive[:, :-1]], axis=1)
  leave = jnp.concatenate([reach * e, survive[:, -1:]], axis=1)
  return reach, leave


def block_reach(reach: jax.Array, leave: jax.Array, positions: Sequence[int], num_blocks: int):
  """[B, N] probability that block n (0-based) runs: the exits before it all passed.

  ``positions[i]`` is the (1-based) block after which early exit i sits.
  """
  batch = leave.shape[0]
  survive_after = jnp.concatenate([reach[:, 1:], leave[:, -1:]], axis=1)  # past exit i
  cols, exit_i = [], -1
  for n in range(num_blocks):
    while exit_i + 1 < len(positions) and positions[exit_i + 1] <= n:
      exit_i += 1
    cols.append(jnp.ones((batch,), leave.dtype) if exit_i < 0 else survive_after[:, exit_i])
  return jnp.stack(cols, axis=1)


def expected_cost_per_sample(tables: CostTables, block_costs, branch_costs, gates, soft_exit,
                             positions: Sequence[int]) -> jax.Array:
  """[B, M] expected cost of each sample's inference."""
  reach, leave = exit_probabilities(gates, soft_exit)
  blocks = block_reach(reach, leave, positions, tables.block.shape[0])
  return blocks @ block_costs + (reach * gates[None, :]) @ branch_costs


def exit_path_costs(block_costs: jax.Array, branch_costs: jax.Array, gates: jax.Array,
                    positions: Sequence[int]) -> jax.Array:
  """[P + 1, M] cost of an inference that leaves at each exit (last row: the final exit).

  Leaving at early exit j runs blocks ``1..p_j`` and every gated branch ``1..j``
  (the earlier ones were evaluated and rejected); the final exit runs every block
  and every gated branch. ``leave @ exit_path_costs(...)`` equals
  ``expected_cost_per_sample`` (the same sum, grouped by exit instead of by unit);
  grouped by exit, a per-sample product of two metrics (EDP) can be taken exactly.
  """
  num_blocks, p = block_costs.shape[0], branch_costs.shape[0]
  backbone = jnp.cumsum(block_costs, axis=0)                       # [N, M]
  branches = jnp.cumsum(gates[:, None] * branch_costs, axis=0)     # [P, M]
  early = [backbone[q - 1] + branches[i] for i, q in enumerate(positions)]
  final = backbone[num_blocks - 1] + (branches[p - 1] if p else 0.0)
  return jnp.stack(early + [final])


def expected_product_per_sample(leave: jax.Array, path_a: jax.Array, path_b: jax.Array) -> jax.Array:
  """[B] ``E[a x b]`` per sample: ``sum_j p_j(x) a_j b_j`` (e.g. EDP = latency x energy).

  The expectation of the per-sample product, as evaluation computes it from the
  exit each sample takes; ``E[a] E[b]`` would differ by the covariance across exits.
  """
  return leave @ (path_a * path_b)


def expected_cost(tables: CostTables, arch, soft_exit: jax.Array,
                  positions: Sequence[int]) -> jax.Array:
  """``E[C]`` [M] over a batch, from an ``ArchProbs`` and ``s_i(x)`` [B, P]."""
  block_costs = expected_block_costs(tables, arch.backbone_bits)
  branch_costs = expected_branch_costs(tables, arch.ops, arch.branch_bits)
  return jnp.mean(expected_cost_per_sample(tables, block_costs, branch_costs, arch.gates,
                                           soft_exit, positions), axis=0)


def static_cost(tables: CostTables, bit_index: int = -1) -> jax.Array:
  """[M] cost of the backbone alone with every block at candidate width ``bit_index``."""
  return jnp.sum(tables.block[:, bit_index], axis=0)
