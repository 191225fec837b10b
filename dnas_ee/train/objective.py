"""The search objective: task loss over exits plus the hardware-cost penalty.

Pure functions of logits, relaxed architecture and cost tables; shared by the
weight step, the architecture step and the benchmark. What the cost terms price
(exit costs, ``E[C]``, EDP, the penalty) lives in ``dnas_ee.cost.search_cost``;
its names are re-exported here for the callers of the objective.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from dnas_ee.cost import exit_probabilities
from dnas_ee.cost.search_cost import (   # noqa: F401  (re-exported)
    CostContext, CostSpec, exit_costs, exit_path_penalties, expected_costs, expected_edp,
    metric_weights, search_cost)
from dnas_ee.exits.confidence import confidence
from dnas_ee.relax import Relaxation, soft_exit_decision

TASK_LOSSES = ("expected", "weighted_sum")


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec(CostSpec):
  """Static choices of the objective (closed over by the jitted steps): what is priced
  (``CostSpec``) and how the task is scored.

  Attributes:
    aux_weight: weight of the *priced* per-exit terms of the architecture step (with
      ``task='expected'``): ``sum_j w_j (CE_j + lambda penalty(path_j))``, each exit's
      cross-entropy next to the penalty of leaving there, so every branch trains its
      choice of ops against its own cost even before any sample leaves early. An
      unpriced per-exit CE would reward expressive ops alone.
  """
  confidence: str = "max_prob"
  task: str = "expected"          # the architecture step's task loss
  weight_task: str = "weighted_sum"   # the weight step's ('same': the architecture step's loss)
  thresholds_as_placed: bool = True   # learned thresholds get the gradient of a placed exit
  aux_weight: float = 0.5
  lam: Callable = lambda step: 0.0

  def __post_init__(self):
    super().__post_init__()
    if self.task not in TASK_LOSSES:
      raise ValueError(f"unknown loss.task {self.task!r}; use one of {TASK_LOSSES}")
    if self.weight_task not in TASK_LOSSES + ("same",):
      raise ValueError(f"unknown loss.weight_task {self.weight_task!r}; use one of "
                       f"{TASK_LOSSES + ('same',)}")


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
    cost_arch: the architecture the cost is taken over; ``arch`` when None (the
      search's modes price what they run: in the sampled mode the cost is taken at the
      sampled widths, one estimator for the task and the cost).

  Returns:
    loss: task loss + priced per-exit terms + lambda(step) * penalty.
    metrics: dict of scalars (and per-exit vectors) for logging.
  """
  cost_arch = arch if cost_arch is None else cost_arch
  learned = arch.thresholds is not None
  thresholds = arch.thresholds if learned else ctx.thresholds
  stacked = jnp.stack(logits, axis=1)                          # [B, E, K]
  ce = optax.softmax_cross_entropy_with_integer_labels(stacked, labels[:, None])  # [B, E]
  conf = _confidences(logits, spec.confidence, labels.shape[0])
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
  aux = jnp.zeros(())
  if task_kind == "expected" and spec.aux_weight:
    per_exit = jnp.mean(ce, axis=0)
    if with_penalty:   # each exit's CE is worth what leaving there costs
      per_exit = per_exit + lam * exit_path_penalties(spec, ctx, cost_arch)
    aux = spec.aux_weight * (per_exit @ ctx.exit_weights)
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


def _confidences(logits: list, measure: str, batch: int) -> jax.Array:
  """``[B, P]`` confidence of every early exit (``[B, 0]`` when there is none)."""
  if len(logits) == 1:
    return jnp.zeros((batch, 0), logits[0].dtype)
  return jnp.stack([confidence(l, measure) for l in logits[:-1]], axis=1)
