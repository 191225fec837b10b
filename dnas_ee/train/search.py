"""The search: alternating bi-level optimization of weights and architecture.

``search_step`` is a pure, module-level function ``(state, batch) -> (state, metrics)``
jitted with the state donated. Each iteration takes an architecture step on the
validation batch (Adam, DARTS defaults; first-order, second-order through one
unrolled weight step by autodiff, or none for single-level) and a weight step on
the training batch (SGD with momentum and a cosine schedule). Schedules read
``state.step`` inside jit, so annealing never retraces. The rng is folded with
the step, so a resumed run repeats an uninterrupted one exactly.

Collapse guard (DARTS's drift to parameter-free ops): the architecture is frozen
for ``search.warmup_steps`` while the weights warm up, so that parametric ops are
not judged untrained; ops and gates are then learned with a temperature that
anneals to near one-hot, which keeps the supernet close to the derived network.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from dnas_ee.data.augment import augment_batch
from dnas_ee.models.layers import ArchParam
from dnas_ee.models.supernet import Supernet, relaxed_architecture, sampled_architecture
from dnas_ee.relax import Relaxation
from dnas_ee.train.objective import CostContext, ObjectiveSpec, search_objective
from dnas_ee.train.frozen import frozen_forward, zero_backbone
from dnas_ee.train.xla import jit

ORDERS = ("first", "second", "single_level")


@dataclasses.dataclass(frozen=True)
class SearchState:
  step: jax.Array
  params: nnx.State
  arch: nnx.State
  stats: nnx.State
  w_opt: optax.OptState
  a_opt: optax.OptState
  rng: jax.Array
  nonfinite_step: jax.Array   # -1 while every step has been finite


jax.tree_util.register_dataclass(
    SearchState, data_fields=["step", "params", "arch", "stats", "w_opt", "a_opt", "rng",
                              "nonfinite_step"], meta_fields=[])


@dataclasses.dataclass(frozen=True)
class SearchSetup:
  """Static parts of the search step (closed over; never traced)."""
  graphdef: nnx.GraphDef
  objective: ObjectiveSpec
  w_tx: optax.GradientTransformation
  a_tx: optax.GradientTransformation
  op_temperature: Callable
  threshold_temperature: Callable
  order: str = "first"
  unroll_lr: float = 0.0
  warmup_steps: int = 0
  augment_pad: int = 0
  augment_flip: bool = False
  mixture_mode: str = "softmax"
  gate_mode: str = "sigmoid"
  # search.backbone='frozen': batches hold cached backbone features and final logits
  # (``dnas_ee.train.feature_cache``) instead of images, and the backbone never updates.
  frozen_backbone: bool = False

  def __post_init__(self):
    if self.order not in ORDERS:
      raise ValueError(f"unknown search.order {self.order!r}; use one of {ORDERS}")
    if self.order == "second" and self.unroll_lr <= 0:
      raise ValueError("search.order='second' with search.unroll_lr=0 is the first-order "
                       "gradient at twice the cost: set search.unroll_lr=-1 (DARTS's xi = "
                       "search.w_lr) or a positive step, or use search.order='first'")


def split_model(model: Supernet):
  """(graphdef, weights, architecture logits, BatchNorm statistics)."""
  return nnx.split(model, nnx.Param, ArchParam, nnx.BatchStat)


def init_search_state(model: Supernet, setup: SearchSetup, seed: int) -> SearchState:
  _, params, arch, stats = split_model(model)
  return SearchState(step=jnp.zeros((), jnp.int32), params=params, arch=arch, stats=stats,
                     w_opt=setup.w_tx.init(params), a_opt=setup.a_tx.init(arch),
                     rng=jax.random.key_data(jax.random.key(seed)),
                     nonfinite_step=jnp.full((), -1, jnp.int32))


def relaxation_at(setup: SearchSetup, step) -> Relaxation:
  return Relaxation(op_temperature=setup.op_temperature(step),
                    threshold_temperature=setup.threshold_temperature(step),
                    mixture_mode=setup.mixture_mode, gate_mode=setup.gate_mode)


def batch_loss(setup: SearchSetup, ctx: CostContext, params, arch, stats, images, labels, rng, step,
               phase: str = "arch"):
  """Loss on one batch in training mode; returns (loss, (new BatchNorm stats, metrics)).

  ``phase``: 'arch' or 'weights' (``dnas_ee.train.objective.search_objective``). In
  ``mixture_mode='sampled'`` the forward pass quantizes every layer at one sampled width
  (``sampled_architecture``: branch ops and gates stay relaxed) and the cost is taken at
  the same sample: one straight-through estimator for the task and the cost, so lambda
  means what it means in the softmax mode. The logged decisions are the noiseless
  distributions (no Gumbel noise).
  """
  model = nnx.merge(setup.graphdef, params, arch, stats, copy=True)
  relax = relaxation_at(setup, step)
  rngs = jax.random.split(rng)
  needs_rng = setup.mixture_mode == "gumbel" or setup.gate_mode == "gumbel"
  probs = relaxed_architecture(model, relax, rngs[0] if needs_rng else None)
  forward = probs
  if setup.mixture_mode == "sampled":
    forward = sampled_architecture(model, probs, relax, rngs[1])
  logits = frozen_forward(model, images, forward) if setup.frozen_backbone else model(
      images, forward, train=True)
  with jax.named_scope("objective"):   # task loss and cost layer (a part of the program)
    loss, metrics = search_objective(setup.objective, ctx, logits, labels, forward, relax, step,
                                     phase=phase)
  if phase == "arch":   # the trajectory of every decision (search_metrics.jsonl)
    shown = relaxed_architecture(model, dataclasses.replace(
        relax, mixture_mode="softmax", gate_mode="sigmoid")) if needs_rng else probs
    metrics = dict(metrics, gates=shown.gates, thresholds=shown.thresholds, op_probs=shown.ops,
                   backbone_bit_probs=shown.backbone_bits, branch_bit_probs=shown.branch_bits)
  return loss, (nnx.state(model, nnx.BatchStat), metrics)


def _arch_grads(setup, ctx, state, train_batch, val_batch, rngs):
  """Gradient of the validation loss with respect to the architecture logits."""
  (xt, yt), (xv, yv) = train_batch, val_batch
  step = state.step
  if setup.order == "second":
    def unrolled(arch):
      # DARTS eq. 7: w' = w - xi * dL_train/dw, differentiated through by autodiff.
      grads_w = jax.grad(lambda p: batch_loss(setup, ctx, p, arch, state.stats, xt, yt, rngs[0],
                                              step, phase="weights")[0])(state.params)
      params = jax.tree.map(lambda p, g: p - setup.unroll_lr * g, state.params, grads_w)
      return batch_loss(setup, ctx, params, arch, state.stats, xv, yv, rngs[1], step)
    return jax.grad(unrolled, has_aux=True)(state.arch)
  return jax.grad(lambda a: batch_loss(setup, ctx, state.params, a, state.stats, xv, yv, rngs[1],
                                       step), has_aux=True)(state.arch)


def search_step(state: SearchState, train_batch, val_batch, ctx: CostContext, *, setup: SearchSetup):
  """One search iteration: an architecture step, then a weight step."""
  step = state.step
  rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), step)
  rngs = jax.random.split(rng, 4)
  xt, yt = train_batch
  if not setup.frozen_backbone:   # cached features hold their augmented views already
    xt = augment_batch(rngs[2], xt, pad=setup.augment_pad, flip=setup.augment_flip)
  train_batch = (xt, yt)

  # The architecture update is computed every step and masked during the warm-up:
  # wrapping it in lax.cond instead made XLA:CPU run the step ~10x slower (the
  # convolutions inside a conditional branch lose their fast path).
  arch_on = step >= setup.warmup_steps
  masked = lambda new, old: jax.tree.map(lambda n, o: jnp.where(arch_on, n, o), new, old)
  if setup.order == "single_level":
    (w_loss, (stats, metrics)), (g_params, g_arch) = jax.value_and_grad(
        lambda p, a: batch_loss(setup, ctx, p, a, state.stats, xt, yt, rngs[0], step),
        argnums=(0, 1), has_aux=True)(state.params, state.arch)
    a_loss = w_loss
  else:
    g_arch, (_, a_metrics) = _arch_grads(setup, ctx, state, train_batch, val_batch, rngs)
    a_loss = jnp.where(arch_on, a_metrics["loss"], 0.0)
  with jax.named_scope("optimizer"):
    upd, a_opt = setup.a_tx.update(g_arch, state.a_opt, state.arch)
  arch = masked(optax.apply_updates(state.arch, upd), state.arch)
  a_opt = masked(a_opt, state.a_opt)
  if setup.order != "single_level":
    (w_loss, (stats, w_metrics)), g_params = jax.value_and_grad(
        lambda p: batch_loss(setup, ctx, p, arch, state.stats, xt, yt, rngs[0], step,
                             phase="weights"),
        has_aux=True)(state.params)
    # Decisions and cost as the architecture step saw them; losses of the weight step.
    metrics = dict(a_metrics, weight_loss=w_metrics["loss"], train_task=w_metrics["task"],
                   exit_accuracy=w_metrics["exit_accuracy"])

  with jax.named_scope("optimizer"):
    updates, w_opt = setup.w_tx.update(g_params, state.w_opt, state.params)
  if setup.frozen_backbone:
    updates = zero_backbone(updates)
  params = optax.apply_updates(state.params, updates)
  finite = (jnp.isfinite(w_loss) & jnp.isfinite(a_loss) & jnp.isfinite(optax.tree.norm(params))
            & jnp.isfinite(optax.tree.norm(arch)))
  ok = finite & (state.nonfinite_step < 0)
  keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)
  new_state = SearchState(
      step=step + 1, params=keep(params, state.params), arch=keep(arch, state.arch),
      stats=keep(stats, state.stats), w_opt=keep(w_opt, state.w_opt), a_opt=keep(a_opt, state.a_opt),
      rng=state.rng,
      nonfinite_step=jnp.where((state.nonfinite_step < 0) & ~finite, step, state.nonfinite_step))
  relax = relaxation_at(setup, step)
  metrics = dict(metrics, arch_loss=a_loss, op_temperature=relax.op_temperature,
                 threshold_temperature=relax.threshold_temperature, finite=finite)
  return new_state, metrics


def jit_search_step(setup: SearchSetup):
  """The jitted step, state donated (its buffers are reused for the new state)."""
  return jit(functools.partial(search_step, setup=setup), donate_argnums=0)
