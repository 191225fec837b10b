"""Expected latency and energy of an early-exit network on a multi-core accelerator.

Reference A's "resource allocation": on a multi-core accelerator each exit branch
can run on the backbone's core or on another one. The model, per inference:

- The backbone runs on core 0, block after block (``b_n``: latency of block n).
- Early exit i sits after block ``p_i``; its branch takes ``A_i`` seconds and is
  placed with probability ``g_i`` (the exit gate).
- *Sequential* allocation: the branch runs on core 0 right after block ``p_i``; its
  latency adds to the backbone's critical path and delays every later block.
- *Parallel* allocation: the block's output is sent over the core-to-core link
  (``T_i`` seconds and ``E^T_i`` joules, ``dnas_ee.hw.transfer_cost``) and
  the branch runs on another core while the backbone goes on. A free core is assumed
  for every parallel branch (no contention for cores or links: true for a derived
  network with fewer overlapping parallel branches than spare cores; check a derived
  network with ``discrete_schedule_latency(..., num_cores=C)``).
- ``q_i`` in [0, 1] is the relaxed probability that branch i is parallel.

Backbone time when block ``p_i`` finishes, and finish time of exit i::

    S_i = sum_{n <= p_i} b_n + sum_{k < i} g_k (1 - q_k) A_k
    F_i = S_i + g_i [ (1 - q_i) A_i + q_i (T_i + A_i) ]

A sample that leaves at exit j must also know that every earlier exit rejected it,
so its latency is the running maximum, and the final exit also waits for the
whole backbone and every sequential branch::

    L_j     = max(F_1, ..., F_j)                   (early exits)
    L_final = max(L_P, S_final),  S_final = sum_n b_n + sum_k g_k (1 - q_k) A_k

    E[latency](x) = sum_j p_j(x) L_j

with ``p_j(x)`` the exit probabilities of ``dnas_ee.cost.exit_probabilities``.
With every ``q_i = 0`` the ``F_i`` are non-decreasing, the maxima vanish and this
is exactly the single-core expected latency of ``dnas_ee.cost`` (for any soft
values, not only at zero temperature). ``max`` is ``jnp.maximum``: its gradient
is exact except on ties, where JAX splits it evenly.

Energy adds up whatever the allocation: the single-core expected energy
(``expected_cost_per_sample`` on the energy metric) plus, for every branch
evaluated (probability ``r_i(x) g_i``), ``q_i`` times its transfer energy. Work the
backbone does past an exit while a parallel branch is still deciding is not
charged (the backbone is assumed to stop when the sample leaves).

Example:
  >>> import jax.numpy as jnp
  >>> from dnas_ee.cost import exit_probabilities
  >>> gates, soft = jnp.array([1.0]), jnp.array([[0.0], [1.0]])   # one exit, taken by sample 2
  >>> _, leave = exit_probabilities(gates, soft)
  >>> lat = multicore_latency_per_sample(jnp.array([1.0, 2.0]), jnp.array([0.5]),
  ...                                    jnp.array([0.1]), gates, jnp.array([1.0]), leave, (1,))
  >>> [round(float(v), 6) for v in lat]   # final: 1 + 2 (branch off the path); exit: 1 + 0.1 + 0.5
  [3.0, 1.6]
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp


def _check_positions(positions: Sequence[int], num_branches: int,
                     num_blocks: int) -> tuple[int, ...]:
  positions = tuple(int(p) for p in positions)
  if len(positions) != num_branches:
    raise ValueError(f"positions has {len(positions)} entries for {num_branches} branches; give "
                     "the (1-based) block after which each early exit sits")
  if list(positions) != sorted(set(positions)) or any(not 1 <= p < num_blocks for p in positions):
    raise ValueError(f"exit positions {positions} must be increasing block indices in "
                     f"[1, {num_blocks - 1}]")
  return positions


def exit_finish_times(block_latency: jax.Array, branch_latency: jax.Array,
                      transfer_latency: jax.Array, gates: jax.Array, parallel: jax.Array,
                      positions: Sequence[int]) -> tuple[jax.Array, jax.Array]:
  """``(L, S_final)``: latency ``L_j`` of leaving at early exit j [P], and ``S_final``.

  Args:
    block_latency: [N] ``b_n``, seconds per backbone block (e.g. the latency column
      of ``expected_block_costs``).
    branch_latency: [P] ``A_i`` (e.g. of ``expected_branch_costs``).
    transfer_latency: [P] ``T_i``, moving exit i's input to another core.
    gates: [P] ``g_i``.
    parallel: [P] ``q_i``, probability that branch i runs on another core.
    positions: (static) block after which each early exit sits, 1-based.
  """
  n, p = block_latency.shape[0], branch_latency.shape[0]
  positions = _check_positions(positions, p, n)
  backbone = jnp.cumsum(block_latency)
  if p == 0:
    return jnp.zeros((0,), block_latency.dtype), backbone[-1]
  sequential = gates * (1.0 - parallel) * branch_latency
  delay = jnp.cumsum(sequential) - sequential            # sequential branches before exit i
  start = backbone[jnp.asarray([q - 1 for q in positions])] + delay        # S_i
  finish = start + gates * (branch_latency + parallel * transfer_latency)  # F_i
  running, latency = finish[0], [finish[0]]
  for i in range(1, p):                                   # P is small: an unrolled cummax
    running = jnp.maximum(running, finish[i])
    latency.append(running)
  return jnp.stack(latency), backbone[-1] + jnp.sum(sequential)


def multicore_latency_per_sample(block_latency: jax.Array, branch_latency: jax.Array,
                                 transfer_latency: jax.Array, gates: jax.Array,
                                 parallel: jax.Array, leave: jax.Array,
                                 positions: Sequence[int]) -> jax.Array:
  """[B] expected latency of each sample's inference on a multi-core accelerator.

  Args:
    block_latency: [N] seconds per backbone block.
    branch_latency: [P] seconds per exit branch ``A_i``.
    transfer_latency: [P] seconds to send exit i's input to another core ``T_i``.
    gates: [P] exit gates ``g_i``.
    parallel: [P] ``q_i``: 1 = branch on another core, 0 = on the backbone's core.
    leave: [B, P + 1] exit probabilities ``p_j(x)`` (``exit_probabilities``; last
      column: the final exit).
    positions: (static) 1-based block after which each early exit sits.

  Returns:
    ``sum_j p_j(x) L_j`` for every sample (module docstring).
  """
  early, final = exit_finish_times(block_latency, branch_latency, transfer_latency, gates,
                                   parallel, positions)
  last = jnp.maximum(early[-1], final) if early.shape[0] else final
  return leave @ jnp.concatenate([early, last[None]])


def multicore_expected_latency(block_latency, branch_latency, transfer_latency, gates, parallel,
                               leave, positions: Sequence[int]) -> jax.Array:
  """Scalar: ``multicore_latency_per_sample`` averaged over the batch."""
  return jnp.mean(multicore_latency_per_sample(block_latency, branch_latency, transfer_latency,
                                               gates, parallel, leave, positions))


def multicore_transfer_energy(transfer_energy: jax.Array, gates: jax.Array, parallel: jax.Array,
                              leave: jax.Array) -> jax.Array:
  """[B] expected transfer energy per sample: ``sum_i r_i(x) g_i q_i E^T_i``.

  Add it to the single-core expected energy (``expected_cost_per_sample``) for the
  multi-core energy.

  Args:
    transfer_energy: [P] joules to send exit i's input to another core.
    gates: [P] ``g_i``.
    parallel: [P] ``q_i``.
    leave: [B, P + 1] exit probabilities; ``r_i(x) = sum_{j >= i} p_j(x)``.
  """
  reach = jnp.flip(jnp.cumsum(jnp.flip(leave, axis=1), axis=1), axis=1)[:, :-1]
  return reach @ (gates * parallel * transfer_energy)


def expected_transfer(table: jax.Array, branch_bit_probs: jax.Array) -> jax.Array:
  """[P] expected transfer latency or energy from a table [P, nb] (per exit and branch bit
  width, e.g. ``dnas_ee.hw.transfer_tables``) and the branch bit-width mixtures [P, nb]."""
  return jnp.sum(table * branch_bit_probs, axis=-1)


def discrete_schedule_latency(block_latency: Sequence[float], branch_latency: Sequence[float],
                              transfer_latency: Sequence[float], kept_exits: Sequence[int],
                              parallel_flags: Sequence[bool], exit_index: int, *,
                              num_cores: int | None = None) -> float:
  """Latency of one inference of a *derived* network, by simulating its schedule.

  Independent of the relaxed formulas on purpose (the zero-temperature test compares
  them): core 0 runs the backbone program block by block; at each kept exit it either
  runs the branch itself or sends the feature map to a helper core, which then runs
  the branch; the answer for a sample leaving at exit ``exit_index`` is ready when
  that exit and every earlier one have finished.

  Args:
    block_latency: [N] seconds per backbone block.
    branch_latency, transfer_latency, parallel_flags: one per kept exit.
    kept_exits: the 1-based blocks after which the kept exits sit (increasing).
    exit_index: where the sample leaves: ``0..len(kept_exits)-1``, or
      ``len(kept_exits)`` for the final exit.
    num_cores: ``None``: a free helper core for every parallel branch (the relaxed
      model's assumption); else ``num_cores - 1`` helper cores, each parallel branch
      queued on the one that frees up first.

  Returns:
    Seconds from the start of the inference to the sample's answer.
  """
  kept = [int(p) for p in kept_exits]
  if not (len(branch_latency) == len(transfer_latency) == len(parallel_flags) == len(kept)):
    raise ValueError("branch_latency, transfer_latency and parallel_flags need one entry per "
                     f"kept exit ({len(kept)})")
  if not 0 <= exit_index <= len(kept):
    raise ValueError(f"exit_index={exit_index}: use 0..{len(kept)} (the last is the final exit)")
  if num_cores is not None and num_cores < 2 and any(parallel_flags):
    raise ValueError(f"num_cores={num_cores}: a parallel branch needs a second core")
  at_block = {pos: e for e, pos in enumerate(kept)}
  helpers = [0.0] * ((num_cores - 1) if num_cores else 0)   # when each helper core frees up
  ready = []                                                # exit e's decision time
  clock = 0.0                                               # core 0
  for n, block in enumerate(block_latency, start=1):
    clock += float(block)                                   # event: block n done on core 0
    e = at_block.get(n)
    if e is None:
      continue
    if not parallel_flags[e]:                               # event: branch e done on core 0
      clock += float(branch_latency[e])
      ready.append(clock)
    else:                                                   # transfer, then branch on a helper
      start = clock
      if helpers:
        core = min(range(len(helpers)), key=helpers.__getitem__)
        start = max(clock, helpers[core])
      done = start + float(transfer_latency[e]) + float(branch_latency[e])
      if helpers:
        helpers[core] = done
      ready.append(done)
    if e == exit_index:
      return max(ready)
  return max([clock] + ready)                               # final classifier, after all exits


__all__ = ["discrete_schedule_latency", "exit_finish_times", "expected_transfer",
           "multicore_expected_latency", "multicore_latency_per_sample",
           "multicore_transfer_energy"]
