"""One call for the expected cost of any early-exit network (no search-space classes).

For a chain network (backbone segment 1, exit 1, segment 2, exit 2, ..., segment
N with the final classifier) with per-segment cost vectors ``B_n`` and per-exit
cost vectors ``A_i``, the expected cost of one sample is docs/design.md's

    E[C](x) = sum_n rho_n(x) B_n + sum_i r_i(x) g_i A_i

with ``s_i(x)`` the probability that x leaves at exit i once it gets there,
``g_i`` the gate of exit i (1: always placed), ``e_i = g_i s_i``,
``r_i(x) = prod_{j<i} (1 - e_j(x))`` the probability of reaching exit i and
``rho_n(x)`` that of running segment n. Optional mixture probabilities (over bit
widths, or candidate ops) turn ``[N, K, M]`` candidate costs into expected ones.

Everything is a pure ``jnp`` function: jit-, grad- and vmap-safe.

Example (costs from a traced Flax model on a shipped accelerator)::

    net = trace_exit_network([model.stage1, model.exit1, model.stage2], x[:1])
    table = cost_table(net, LayerCosts("edge_tpu_like"))
    conf = jax.nn.softmax(exit_logits).max(-1)[:, None]           # [B, P]
    expected = early_exit_cost(table.backbone, table.exits, confidences=conf,
                               thresholds=0.9).mean               # [M]
    loss = ce + lam * expected[0] / table.static[0]               # latency penalty
"""
from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dnas_ee.cost.expected import block_reach, exit_probabilities


@functools.partial(jax.tree_util.register_dataclass, data_fields=["backbone", "exits"],
                   meta_fields=["metrics"])
@dataclasses.dataclass(frozen=True)
class CostTable:
  """Per-segment costs of an early-exit network, built once on the host (a pytree).

  Attributes:
    backbone: [N, M] cost of each backbone segment.
    exits: [P, M] cost of each early exit branch.
    metrics: the ``M`` metric names (e.g. ``('latency_s', 'energy_j')``).
  """
  backbone: np.ndarray | jax.Array
  exits: np.ndarray | jax.Array
  metrics: tuple[str, ...]

  @property
  def static(self) -> np.ndarray:
    """[M] cost of the backbone alone (no exit evaluated): the usual ``C_ref``."""
    return self.backbone.sum(axis=0)

  def index(self, metric: str) -> int:
    if metric not in self.metrics:
      raise ValueError(f"metric {metric!r} is not in this cost table {self.metrics}")
    return self.metrics.index(metric)


def cost_table(network, source) -> CostTable:
  """Prices every segment of a traced network with a cost source.

  Args:
    network: a ``TracedNetwork`` (``dnas_ee.space.trace``), or anything with
      ``backbone`` and ``exits`` sequences of ``OpSignature`` lists.
    source: a cost source (``OpSignature -> [M]`` with ``metrics``), e.g.
      ``ShapeCosts()`` or ``dnas_ee.hw.LayerCosts('edge_tpu_like')``.

  Returns:
    A ``CostTable`` (float64 numpy arrays).
  """
  segments = [list(s) for s in network.backbone] + [list(s) for s in network.exits]
  m = len(source.metrics)
  if hasattr(source, "table"):  # one pass: one warning for every op a LUT lacks
    rows = np.asarray(source.table(segments), np.float64).reshape(len(segments), m)
  else:
    rows = np.array([np.sum([source(sig) for sig in seg], axis=0) if seg else np.zeros(m)
                     for seg in segments], np.float64).reshape(len(segments), m)
  n = len(network.backbone)
  return CostTable(rows[:n], rows[n:], tuple(source.metrics))


class ExpectedCost(NamedTuple):
  """What ``early_exit_cost`` returns.

  Attributes:
    per_sample: [B, M] expected cost of each sample's inference.
    mean: [M] its mean over the batch (``E[C]``).
    leave: [B, P + 1] probability of leaving at each exit (last: the final one).
  """
  per_sample: jax.Array
  mean: jax.Array
  leave: jax.Array


def _mix(costs, probs, what: str) -> jax.Array:
  costs = jnp.asarray(costs)
  if probs is None:
    if costs.ndim != 2:
      raise ValueError(f"{what} costs have shape {costs.shape}: give [segments, metrics], or "
                       f"[segments, candidates, metrics] with {what}_mix probabilities")
    return costs
  probs = jnp.asarray(probs)
  if costs.ndim != 3 or probs.shape != costs.shape[:2]:
    raise ValueError(f"{what}_mix has shape {probs.shape} for {what} costs of shape "
                     f"{costs.shape}: give costs [S, K, M] and probabilities [S, K]")
  return jnp.einsum("sk,skm->sm", probs, costs)


def _soft_exit(exit_probs, confidences, thresholds, temperature) -> jax.Array:
  if (exit_probs is None) == (confidences is None):
    raise ValueError("give exactly one of exit_probs ([B, P] probability of leaving at each exit "
                     "once there) or confidences ([B, P], with thresholds)")
  if exit_probs is not None:
    return jnp.asarray(exit_probs)
  if thresholds is None:
    raise ValueError("confidences need thresholds (a scalar or one per exit)")
  # docs/design.md's soft exit decision s_i = sigmoid((c_i - tau_i) / t).
  return jax.nn.sigmoid((jnp.asarray(confidences) - jnp.asarray(thresholds)) / temperature)


def early_exit_cost(backbone, exits, *, exit_probs=None, confidences=None, thresholds=None,
                    temperature: float = 0.05, gates=None, gate_logits=None, backbone_mix=None,
                    exit_mix=None, positions: Sequence[int] | None = None) -> ExpectedCost:
  """Expected cost per sample of an early-exit network, and its batch mean.

  Args:
    backbone: [N, M] cost of each backbone segment (or [N, K, M] with ``backbone_mix``).
    exits: [P, M] cost of each early exit (or [P, K, M] with ``exit_mix``).
    exit_probs: [B, P] ``s_i(x)``, probability that sample x leaves at exit i once
      it reaches it. Or give instead:
    confidences: [B, P] exit confidences (e.g. max softmax probability), with
    thresholds: scalar or [P]; ``s_i = sigmoid((c_i - tau_i) / temperature)``.
    temperature: sharpness of that soft threshold.
    gates: [P] probability that exit i is placed; or ``gate_logits`` [P]
      (``g = sigmoid(gate_logits)``); neither: every exit is placed.
    backbone_mix: [N, K] mixture probabilities over ``backbone``'s candidates.
    exit_mix: [P, K] mixture probabilities over ``exits``' candidates.
    positions: the 1-based backbone segment after which each exit sits (static);
      default ``1..P`` (then ``N = P + 1``).

  Returns:
    ``ExpectedCost(per_sample [B, M], mean [M], leave [B, P + 1])``.
  """
  block_costs = _mix(backbone, backbone_mix, "backbone")
  exit_costs = _mix(exits, exit_mix, "exit")
  n, p = block_costs.shape[0], exit_costs.shape[0]
  soft = _soft_exit(exit_probs, confidences, thresholds, temperature)
  if soft.ndim != 2 or soft.shape[1] != p:
    raise ValueError(f"exit probabilities/confidences have shape {soft.shape}; expected "
                     f"[batch, {p}] (one column per early exit)")
  positions = tuple(range(1, p + 1)) if positions is None else tuple(int(q) for q in positions)
  if len(positions) != p or list(positions) != sorted(set(positions)) or (
      p and not 1 <= positions[0] <= positions[-1] < n):
    raise ValueError(f"positions={positions} for {p} exits and {n} backbone segments: give one "
                     f"increasing position per exit, each in 1..{n - 1}")
  if gates is not None and gate_logits is not None:
    raise ValueError("give gates or gate_logits, not both")
  if gate_logits is not None:
    gates = jax.nn.sigmoid(jnp.asarray(gate_logits))
  gates = jnp.ones((p,), soft.dtype) if gates is None else jnp.asarray(gates)
  reach, leave = exit_probabilities(gates, soft)
  runs = block_reach(reach, leave, positions, n)                      # [B, N]
  per_sample = runs @ block_costs + (reach * gates[None, :]) @ exit_costs
  return ExpectedCost(per_sample, jnp.mean(per_sample, axis=0), leave)


__all__ = ["CostTable", "ExpectedCost", "cost_table", "early_exit_cost"]
