"""The search objective: task loss over exits plus the hardware-cost penalty.

Pure functions of logits, relaxed architecture and cost tables; shared by the
weight step, the architecture step and the benchmark.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dnas_ee.cost import (
    cost_penalty, exit_probabilities, expected_block_costs, expected_branch_costs, expected_cost,
    expected_cost_per_sample)
from dnas_ee.cost.metrics import OBJECTIVE_METRICS as _OBJECTIVE_METRIC, OBJECTIVES
from dnas_ee.cost.multicore import (
    expected_transfer, multicore_latency_per_sample, multicore_transfer_energy)
from dnas_ee.cost.tables import CostTables
from dnas_ee.exits.confidence import confidence
from dnas_ee.relax import Relaxation, soft_exit_decision

TASK_LOSSES = ("expected", "weighted_sum")


@dataclasses.dataclass(frozen=True)
class CostContext:
  """Arrays the penalty needs (a pytree argument of the jitted steps)."""
  tables: CostTables
  reference: jax.Array      # [M] static backbone at the reference width
  metric_weights: jax.Array  # [M]
  thresholds: jax.Array     # [P] search-time exit thresholds
  exit_weights: jax.Array   # [E] weights of the per-exit cross-entropies
  transfer_latency: jax.Array  # [P, nb] multi-core: sending a branch's input to another core
  transfer_energy: jax.Array   # [P, nb]


jax.tree_util.register_dataclass(
    CostContext, data_fields=["tables", "reference", "metric_weights", "thresholds", "exit_weights",
                              "transfer_latency", "transfer_energy"], meta_fields=[])


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
  """Static choices of the objective (closed over by the jitted steps)."""
  positions: tuple[int, ...]
  confidence: str = "max_prob"
  task: str = "expected"
  aux_weight: float = 0.5
  penalty: str = "linear"
  target: float = 0.5
  objective: str = "macs"
  metrics: tuple[str, ...] = ("macs", "weight_bytes")
  lam: Callable = lambda step: 0.0
  multicore: bool = False   # latency as a critical path over cores (dnas_ee.cost.multicore)

  def __post_init__(self):
    if self.task not in TASK_LOSSES:
      raise ValueError(f"unknown loss.task {self.task!r}; use one of {TASK_LOSSES}")
    if self.objective not in OBJECTIVES:
      raise ValueError(f"unknown hw.objective {self.objective!r}; use one of {OBJECTIVES}")
    if self.objective == "edp":
      for m in ("latency_s", "energy_j"):
        if m not in self.metrics:
          raise ValueError("hw.objective='edp' needs latency and energy: set --config.hw.accelerator")
    elif self.objective in _OBJECTIVE_METRIC and _OBJECTIVE_METRIC[self.objective] not in self.metrics:
      raise ValueError(f"hw.objective={self.objective!r} needs the metric "
                       f"{_OBJECTIVE_METRIC[self.objective]!r}: set --config.hw.accelerator")


def metric_weights(objective: str, metrics: tuple[str, ...], weighted: dict) -> np.ndarray:
  """[M] weights of the penalty's metrics for an objective."""
  if objective == "weighted":
    unknown = set(weighted) - set(metrics) - {"latency_s", "energy_j", "macs", "weight_bytes"}
    if unknown:
      raise ValueError(f"loss.metric_weights has unknown metrics {sorted(unknown)}")
    return np.array([float(weighted.get(m, 0.0)) for m in metrics], np.float32)
  if objective == "edp":
    return np.zeros(len(metrics), np.float32)
  return np.array([m == _OBJECTIVE_METRIC[objective] for m in metrics], np.float32)


def expected_costs(spec: ObjectiveSpec, ctx: CostContext, arch, soft: jax.Array) -> jax.Array:
  """``E[C]`` [M]; on a multi-core accelerator latency is the expected critical path and
  energy includes the transfers of branches placed on another core."""
  if not spec.multicore:
    return expected_cost(ctx.tables, arch, soft, spec.positions)
  lat, en = spec.metrics.index("latency_s"), spec.metrics.index("energy_j")
  block = expected_block_costs(ctx.tables, arch.backbone_bits)
  branch = expected_branch_costs(ctx.tables, arch.ops, arch.branch_bits)
  per_sample = expected_cost_per_sample(ctx.tables, block, branch, arch.gates, soft, spec.positions)
  _, leave = exit_probabilities(arch.gates, soft)
  latency = multicore_latency_per_sample(
      block[:, lat], branch[:, lat], expected_transfer(ctx.transfer_latency, arch.branch_bits),
      arch.gates, arch.parallel, leave, spec.positions)
  energy = per_sample[:, en] + multicore_transfer_energy(
      expected_transfer(ctx.transfer_energy, arch.branch_bits), arch.gates, arch.parallel, leave)
  per_sample = per_sample.at[:, lat].set(latency).at[:, en].set(energy)
  return jnp.mean(per_sample, axis=0)


def cost_term(spec: ObjectiveSpec, ctx: CostContext, expected: jax.Array) -> jax.Array:
  """The penalty before ``lambda``: weighted metrics, or EDP relative to the reference."""
  if spec.objective == "edp":
    lat, en = spec.metrics.index("latency_s"), spec.metrics.index("energy_j")
    edp = expected[lat] * expected[en]
    ref = ctx.reference[lat] * ctx.reference[en]
    return cost_penalty(edp[None], ref[None], jnp.ones((1,)), form=spec.penalty, target=spec.target)
  return cost_penalty(expected, ctx.reference, ctx.metric_weights, form=spec.penalty,
                      target=spec.target)


def search_objective(spec: ObjectiveSpec, ctx: CostContext, logits: list, labels: jax.Array, arch,
                     relax: Relaxation, step: jax.Array):
  """Loss and metrics of one batch.

  Returns:
    loss: task loss + aux loss + lambda(step) * penalty.
    metrics: dict of scalars (and per-exit vectors) for logging.
  """
  stacked = jnp.stack(logits, axis=1)                          # [B, E, K]
  ce = optax.softmax_cross_entropy_with_integer_labels(stacked, labels[:, None])  # [B, E]
  conf = jnp.stack([confidence(l, spec.confidence) for l in logits[:-1]], axis=1)
  soft = soft_exit_decision(conf, ctx.thresholds[None, :], relax)
  _, leave = exit_probabilities(arch.gates, soft)
  weighted = jnp.mean(ce, axis=0) @ ctx.exit_weights
  if spec.task == "expected":
    task = jnp.mean(jnp.sum(leave * ce, axis=1))
    aux = spec.aux_weight * weighted
  else:
    task, aux = weighted, jnp.zeros(())
  cost = expected_costs(spec, ctx, arch, soft)
  penalty = cost_term(spec, ctx, cost)
  lam = spec.lam(step)
  loss = task + aux + lam * penalty
  correct = (jnp.argmax(stacked, -1) == labels[:, None]).astype(jnp.float32)
  metrics = dict(loss=loss, task=task, aux=aux, penalty=penalty, lam=lam,
                 cost_ratio=cost[0] / ctx.reference[0], exit_accuracy=jnp.mean(correct, 0),
                 leave=jnp.mean(leave, 0), expected_accuracy=jnp.mean(jnp.sum(leave * correct, 1)))
  return loss, metrics
