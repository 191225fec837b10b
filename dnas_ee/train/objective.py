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
    cost_penalty, exit_path_costs, exit_probabilities, expected_block_costs,
    expected_branch_costs, expected_product_per_sample)
from dnas_ee.cost.metrics import OBJECTIVE_METRICS as _OBJECTIVE_METRIC, OBJECTIVES
from dnas_ee.cost.multicore import (
    exit_finish_times, expected_transfer, multicore_transfer_energy)
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
  thresholds: jax.Array     # [P] exit thresholds when the architecture carries none
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
  task: str = "expected"          # the architecture step's task loss
  weight_task: str = "weighted_sum"   # the weight step's ('same': the architecture step's loss)
  thresholds_as_placed: bool = True   # learned thresholds get the gradient of a placed exit
  aux_weight: float = 0.5
  penalty: str = "linear"
  target: float = 0.5
  objective: str = "macs"
  metrics: tuple[str, ...] = ("macs", "weight_bytes", "bitops")
  lam: Callable = lambda step: 0.0
  multicore: bool = False   # latency as a critical path over cores (dnas_ee.cost.multicore)

  def __post_init__(self):
    if self.task not in TASK_LOSSES:
      raise ValueError(f"unknown loss.task {self.task!r}; use one of {TASK_LOSSES}")
    if self.weight_task not in TASK_LOSSES + ("same",):
      raise ValueError(f"unknown loss.weight_task {self.weight_task!r}; use one of "
                       f"{TASK_LOSSES + ('same',)}")
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
    unknown = set(weighted) - set(metrics) - {"latency_s", "energy_j", "macs", "weight_bytes",
                                               "bitops"}
    if unknown:
      raise ValueError(f"loss.metric_weights has unknown metrics {sorted(unknown)}")
    return np.array([float(weighted.get(m, 0.0)) for m in metrics], np.float32)
  if objective == "edp":
    return np.zeros(len(metrics), np.float32)
  return np.array([m == _OBJECTIVE_METRIC[objective] for m in metrics], np.float32)


def exit_costs(spec: ObjectiveSpec, ctx: CostContext, arch) -> jax.Array:
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


def _exit_costs_and_leave(spec: ObjectiveSpec, ctx: CostContext, arch, soft: jax.Array):
  """(``[P + 1, M]`` cost of leaving at each exit, ``[B, P + 1]`` exit probabilities)."""
  _, leave = exit_probabilities(arch.gates, soft)
  return exit_costs(spec, ctx, arch), leave


def _edp(spec: ObjectiveSpec, paths: jax.Array, leave: jax.Array) -> jax.Array:
  lat, en = spec.metrics.index("latency_s"), spec.metrics.index("energy_j")
  return jnp.mean(expected_product_per_sample(leave, paths[:, lat], paths[:, en]))


def expected_costs(spec: ObjectiveSpec, ctx: CostContext, arch, soft: jax.Array) -> jax.Array:
  """``E[C]`` [M] over the batch (single- or multi-core, see ``exit_costs``)."""
  paths, leave = _exit_costs_and_leave(spec, ctx, arch, soft)
  return jnp.mean(leave @ paths, axis=0)


def expected_edp(spec: ObjectiveSpec, ctx: CostContext, arch, soft: jax.Array) -> jax.Array:
  """``E[latency x energy]``: the mean over samples of the per-sample product, taken over
  the exit each sample leaves by (as evaluation computes it), not ``E[lat] E[en]``."""
  return _edp(spec, *_exit_costs_and_leave(spec, ctx, arch, soft))


def search_cost(spec: ObjectiveSpec, ctx: CostContext, arch, soft: jax.Array):
  """(the penalty before ``lambda``, ``E[C]`` [M], the searched metric's ratio to the reference).

  The searched metric is EDP (``expected_edp``, relative to the static backbone's
  EDP at the reference width) or the weighted metrics of ``metric_weights``.
  """
  paths, leave = _exit_costs_and_leave(spec, ctx, arch, soft)   # once, for E[C] and EDP
  expected = jnp.mean(leave @ paths, axis=0)
  if spec.objective == "edp":
    lat, en = spec.metrics.index("latency_s"), spec.metrics.index("energy_j")
    edp = _edp(spec, paths, leave)
    ref = ctx.reference[lat] * ctx.reference[en]
    penalty = cost_penalty(edp[None], ref[None], jnp.ones((1,)), form=spec.penalty,
                           target=spec.target)
    return penalty, expected, edp / ref
  penalty = cost_penalty(expected, ctx.reference, ctx.metric_weights, form=spec.penalty,
                         target=spec.target)
  ratio = (expected @ ctx.metric_weights) / (ctx.reference @ ctx.metric_weights)
  return penalty, expected, ratio


def search_objective(spec: ObjectiveSpec, ctx: CostContext, logits: list, labels: jax.Array, arch,
                     relax: Relaxation, step: jax.Array, *, phase: str = "arch", cost_arch=None):
  """Loss and metrics of one batch.

  Args:
    arch: the architecture of the forward pass (``ArchProbs``; one-hot samples in
      single-path mode). Its ``thresholds`` (if any) are the exit thresholds.
    phase: 'arch' (the architecture step: ``spec.task`` + ``lambda * penalty``) or
      'weights' (the weight step: ``spec.weight_task``, without the penalty, so the
      weights are trained as the derived network will be retrained; 'same' uses the
      architecture step's loss).
    cost_arch: the probabilities the expected cost is taken over (single-path mode:
      the exact expectation, not the sample); ``arch`` when None.

  Returns:
    loss: task loss + aux loss + lambda(step) * penalty.
    metrics: dict of scalars (and per-exit vectors) for logging.
  """
  cost_arch = arch if cost_arch is None else cost_arch
  learned = arch.thresholds is not None
  thresholds = arch.thresholds if learned else ctx.thresholds
  stacked = jnp.stack(logits, axis=1)                          # [B, E, K]
  ce = optax.softmax_cross_entropy_with_integer_labels(stacked, labels[:, None])  # [B, E]
  conf = jnp.stack([confidence(l, spec.confidence) for l in logits[:-1]], axis=1)
  weighted = jnp.mean(ce, axis=0) @ ctx.exit_weights
  task_kind = spec.task if phase == "arch" or spec.weight_task == "same" else spec.weight_task
  with_penalty = phase == "arch" or spec.weight_task == "same"
  lam = spec.lam(step)

  def objective(tau, gates, cost_probs, conf, ce):
    soft = soft_exit_decision(conf, tau[None, :], relax)
    _, leave = exit_probabilities(gates, soft)
    if task_kind == "expected":
      task = jnp.mean(jnp.sum(leave * ce, axis=1))
    else:
      task = weighted
    penalty, cost, ratio = search_cost(spec, ctx, cost_probs, soft)
    return task + (lam * penalty if with_penalty else 0.0), (task, penalty, cost, ratio, leave)

  placed = learned and spec.thresholds_as_placed and phase == "arch" and task_kind == "expected"
  tau = jax.lax.stop_gradient(thresholds) if placed else thresholds
  main, (task, penalty, cost, ratio, leave) = objective(tau, arch.gates, cost_arch, conf, ce)
  aux = spec.aux_weight * weighted if task_kind == "expected" else jnp.zeros(())
  loss = main + aux
  if placed:
    # The thresholds learn the operating point each exit would have if it were placed
    # (every gate at 1, nothing else differentiated): with the joint gradient, scaled by
    # g_i, a gate that closes early freezes its threshold, and a frozen high threshold
    # makes the exit pure cost, which closes the gate for good. The gate then decides on
    # the value of the exit at that operating point. This term adds gradient, not value.
    sg = jax.lax.stop_gradient
    ones = jnp.ones_like(arch.gates)
    opened = dataclasses.replace(sg(cost_arch), gates=ones)
    as_placed, _ = objective(thresholds, ones, opened, sg(conf), sg(ce))
    loss = loss + as_placed - sg(as_placed)
  correct = (jnp.argmax(stacked, -1) == labels[:, None]).astype(jnp.float32)
  metrics = dict(loss=loss, task=task, aux=aux, penalty=penalty, lam=lam,
                 cost_ratio=ratio, exit_accuracy=jnp.mean(correct, 0),
                 leave=jnp.mean(leave, 0), expected_accuracy=jnp.mean(jnp.sum(leave * correct, 1)))
  return loss, metrics
