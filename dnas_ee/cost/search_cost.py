"""What the search prices: the cost of a relaxed early-exit network under the run's
objective, and its penalty (docs/design.md, "The expected cost").

    paths = exit_costs(spec, ctx, arch)             # [P + 1, M] cost of leaving at each exit
    _, leave = exit_probabilities(arch.gates, soft)  # [B, P + 1]
    E[C]  = mean_x leave @ paths                     # expected_costs
    EDP   = mean_x sum_j leave_j lat_j en_j          # expected_edp (per sample, not E[lat] E[en])
    penalty = cost_penalty(E[C] or EDP, reference)   # search_cost

The one home of this composition: the search objective (``dnas_ee.train.objective``),
the scored baselines (``dnas_ee.methods.scoring``) and the one-shot evaluation
(``dnas_ee.stages.inherited``) all read it. The pieces it composes are pure functions
of ``cost.expected`` (single core) and ``cost.multicore`` (critical path over cores).

Example:
  >>> spec = CostSpec(positions=(1, 2), objective="bitops", metrics=tables.metrics)
  >>> penalty, expected, ratio = search_cost(spec, ctx, arch, soft)
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from dnas_ee.cost.expected import (
    exit_path_costs, exit_probabilities, expected_block_costs, expected_branch_costs,
    expected_product_per_sample)
from dnas_ee.cost.metrics import OBJECTIVE_METRICS, OBJECTIVES
from dnas_ee.cost.multicore import exit_finish_times, expected_transfer
from dnas_ee.cost.penalty import PENALTY_FORMS, cost_penalty
from dnas_ee.cost.tables import CostTables


@dataclasses.dataclass(frozen=True)
class CostContext:
  """Arrays the penalty needs (a pytree argument of the jitted steps)."""
  tables: CostTables
  reference: jax.Array      # [M] static backbone at the reference width
  metric_weights: jax.Array  # [M]
  thresholds: jax.Array     # [P] exit thresholds when the architecture carries none
  exit_weights: jax.Array   # [E] weights of the per-exit cross-entropies
  transfer_latency: jax.Array  # [P, nb] multi-core: sending a branch's input to another core
  transfer_energy: jax.Array   # [P, nb]


jax.tree_util.register_dataclass(
    CostContext, data_fields=["tables", "reference", "metric_weights", "thresholds", "exit_weights",
                              "transfer_latency", "transfer_energy"], meta_fields=[])


@dataclasses.dataclass(frozen=True)
class CostSpec:
  """Static choices of what the search prices (closed over by the jitted steps).

  Attributes:
    positions: the block after which each candidate exit sits (1-based).
    penalty: ``cost.penalty`` form; 'log' (the default) prices every relative change
      the same wherever the search is, so lambda means one thing throughout.
    target: the budget form's target, a fraction of the reference.
    objective: ``hw.objective`` (``cost.metrics.OBJECTIVES``).
    metrics: the cost tables' metric names.
    multicore: latency as a critical path over cores (``dnas_ee.cost.multicore``).
  """
  positions: tuple[int, ...]
  penalty: str = "log"
  target: float = 0.5
  objective: str = "macs"
  metrics: tuple[str, ...] = ("macs", "weight_bytes", "bitops")
  multicore: bool = False

  def __post_init__(self):
    if self.penalty not in PENALTY_FORMS:
      raise ValueError(f"unknown loss.penalty {self.penalty!r}; use one of {PENALTY_FORMS}")
    if self.objective not in OBJECTIVES:
      raise ValueError(f"unknown hw.objective {self.objective!r}; use one of {OBJECTIVES}")
    if self.objective == "edp":
      for m in ("latency_s", "energy_j"):
        if m not in self.metrics:
          raise ValueError("hw.objective='edp' needs latency and energy: set --config.hw.accelerator")
    elif self.objective in OBJECTIVE_METRICS and OBJECTIVE_METRICS[self.objective] not in self.metrics:
      raise ValueError(f"hw.objective={self.objective!r} needs the metric "
                       f"{OBJECTIVE_METRICS[self.objective]!r}: set --config.hw.accelerator")


def metric_weights(objective: str, metrics: tuple[str, ...], weighted: dict) -> np.ndarray:
  """[M] weights of the penalty's metrics for an objective."""
  if objective == "weighted":
    unknown = set(weighted) - set(metrics) - {"latency_s", "energy_j", "macs", "weight_bytes",
                                               "bitops"}
    if unknown:
      raise ValueError(f"loss.metric_weights has unknown metrics {sorted(unknown)}")
    return np.array([float(weighted.get(m, 0.0)) for m in metrics], np.float32)
  if objective == "edp":
    return np.zeros(len(metrics), np.float32)
  return np.array([m == OBJECTIVE_METRICS[objective] for m in metrics], np.float32)


def exit_costs(spec: CostSpec, ctx: CostContext, arch) -> jax.Array:
  """[P + 1, M] expected cost of leaving at each exit (over op and bit mixtures).

  On a multi-core accelerator the latency column is the critical path of each exit
  (``dnas_ee.cost.multicore``) and the energy column includes the transfers of
  branches placed on another core.
  """
  block = expected_block_costs(ctx.tables, arch.backbone_bits)
  branch = expected_branch_costs(ctx.tables, arch.ops, arch.branch_bits)
  paths = exit_path_costs(block, branch, arch.gates, spec.positions)
  if not spec.multicore:
    return paths
  lat, en = spec.metrics.index("latency_s"), spec.metrics.index("energy_j")
  early, final = exit_finish_times(
      block[:, lat], branch[:, lat], expected_transfer(ctx.transfer_latency, arch.branch_bits),
      arch.gates, arch.parallel, spec.positions)
  last = jnp.maximum(early[-1], final) if early.shape[0] else final
  transfer = arch.gates * arch.parallel * expected_transfer(ctx.transfer_energy, arch.branch_bits)
  cum = jnp.cumsum(transfer)   # transfers of the branches evaluated before leaving
  energy_extra = jnp.concatenate([cum, cum[-1:] if cum.shape[0] else jnp.zeros((1,))])
  return (paths.at[:, lat].set(jnp.concatenate([early, last[None]]))
          .at[:, en].add(energy_extra))


def _edp(spec: CostSpec, paths: jax.Array, leave: jax.Array) -> jax.Array:
  lat, en = spec.metrics.index("latency_s"), spec.metrics.index("energy_j")
  return jnp.mean(expected_product_per_sample(leave, paths[:, lat], paths[:, en]))


def expected_costs(spec: CostSpec, ctx: CostContext, arch, soft: jax.Array) -> jax.Array:
  """``E[C]`` [M] over the batch (single- or multi-core, see ``exit_costs``)."""
  _, leave = exit_probabilities(arch.gates, soft)
  return jnp.mean(leave @ exit_costs(spec, ctx, arch), axis=0)


def expected_edp(spec: CostSpec, ctx: CostContext, arch, soft: jax.Array) -> jax.Array:
  """``E[latency x energy]``: the mean over samples of the per-sample product, taken over
  the exit each sample leaves by (as evaluation computes it), not ``E[lat] E[en]``."""
  _, leave = exit_probabilities(arch.gates, soft)
  return _edp(spec, exit_costs(spec, ctx, arch), leave)


def priced(spec: CostSpec, ctx: CostContext, paths: jax.Array, leave: jax.Array):
  """(the penalty before ``lambda``, ``E[C]`` [M], the searched metric's ratio to the reference)
  of exit probabilities ``leave`` [B, P + 1] over the exit costs ``paths`` [P + 1, M].

  The searched metric is EDP per sample (relative to the static backbone's EDP at the
  reference width) or the metrics weighted by ``ctx.metric_weights`` (each relative
  to its reference).
  """
  expected = jnp.mean(leave @ paths, axis=0)
  if spec.objective == "edp":
    lat, en = spec.metrics.index("latency_s"), spec.metrics.index("energy_j")
    edp, ref = _edp(spec, paths, leave), ctx.reference[lat] * ctx.reference[en]
    penalty = cost_penalty(edp[None], ref[None], jnp.ones((1,)), form=spec.penalty,
                           target=spec.target)
    return penalty, expected, edp / ref
  penalty = cost_penalty(expected, ctx.reference, ctx.metric_weights, form=spec.penalty,
                         target=spec.target)
  ratio = (expected @ ctx.metric_weights) / (ctx.reference @ ctx.metric_weights)
  return penalty, expected, ratio


def search_cost(spec: CostSpec, ctx: CostContext, arch, soft: jax.Array):
  """(the penalty before ``lambda``, ``E[C]`` [M], the searched metric's ratio to the
  reference) of the relaxed ``arch`` with soft exit decisions ``soft`` [B, P] (``priced``)."""
  _, leave = exit_probabilities(arch.gates, soft)
  return priced(spec, ctx, exit_costs(spec, ctx, arch), leave)


def exit_path_penalties(spec: CostSpec, ctx: CostContext, arch) -> jax.Array:
  """[P + 1] the penalty of a network whose every sample leaves at exit ``j``.

  Prices the per-exit accuracy terms of the objective (each exit's cross-entropy is
  worth what leaving there costs). The gates are held (no gradient): whether an
  exit is placed is the expected objective's decision, not this term's.
  """
  arch = dataclasses.replace(arch, gates=jax.lax.stop_gradient(arch.gates))
  paths = exit_costs(spec, ctx, arch)
  columns = jnp.eye(paths.shape[0], dtype=paths.dtype)[:, None, :]   # [E, 1, E]: leave at j
  return jnp.stack([priced(spec, ctx, paths, col)[0] for col in columns])
