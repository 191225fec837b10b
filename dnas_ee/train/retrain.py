"""Training a fixed (derived or static) network from scratch with quantization-aware training.

The network is the supernet module on a derived space (one op per slot, one bit
width per group, exits placed), so it is the same code as in the search.
Loss: weighted per-exit cross-entropies (final exit weight 1, early exits
``retrain.exit_weight``).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from dnas_ee.data.augment import augment_batch
from dnas_ee.models.layers import ArchParam
from dnas_ee.models.supernet import Supernet, relaxed_architecture
from dnas_ee.relax import Relaxation
from dnas_ee.train.frozen import frozen_forward, zero_backbone
from dnas_ee.train.xla import jit

HARD = Relaxation(hard=True)


@dataclasses.dataclass(frozen=True)
class TrainState:
  step: jax.Array
  params: nnx.State
  stats: nnx.State
  opt: optax.OptState
  rng: jax.Array
  nonfinite_step: jax.Array


jax.tree_util.register_dataclass(
    TrainState, data_fields=["step", "params", "stats", "opt", "rng", "nonfinite_step"],
    meta_fields=[])


@dataclasses.dataclass(frozen=True)
class TrainSetup:
  graphdef: nnx.GraphDef
  arch: nnx.State          # fixed one-hot architecture of a derived space (static here)
  tx: optax.GradientTransformation
  exit_weights: tuple[float, ...]
  distill_weight: float = 0.0
  distill_temperature: float = 3.0
  augment_pad: int = 0
  augment_flip: bool = False
  # A frozen backbone (search.backbone='frozen'): batches hold cached backbone features
  # and final logits, only the exit branches train, the backbone never updates.
  frozen_backbone: bool = False


def init_train_state(model: Supernet, tx, seed: int):
  graphdef, params, arch, stats = nnx.split(model, nnx.Param, ArchParam, nnx.BatchStat)
  state = TrainState(jnp.zeros((), jnp.int32), params, stats, tx.init(params),
                     jax.random.key_data(jax.random.key(seed)), jnp.full((), -1, jnp.int32))
  return graphdef, arch, state


def forward(graphdef, params, arch, stats, images, *, train: bool):
  model = nnx.merge(graphdef, params, arch, stats, copy=True)
  logits = model(images, relaxed_architecture(model, HARD), train=train)
  return logits, nnx.state(model, nnx.BatchStat)


def cached_forward(graphdef, params, arch, stats, cached):
  """``forward`` in training mode on cached backbone features (a frozen backbone)."""
  model = nnx.merge(graphdef, params, arch, stats, copy=True)
  logits = frozen_forward(model, cached, relaxed_architecture(model, HARD))
  return logits, nnx.state(model, nnx.BatchStat)


def self_distillation(logits: list, temperature: float) -> jax.Array:
  """Mean KL(final || early exit) at a temperature, teacher held fixed (Zhang et al. 2019)."""
  teacher = jax.nn.softmax(jax.lax.stop_gradient(logits[-1]) / temperature)
  kl = [jnp.mean(optax.kl_divergence(jax.nn.log_softmax(l / temperature), teacher))
        for l in logits[:-1]]
  return temperature**2 * jnp.mean(jnp.stack(kl))


def train_step(state: TrainState, batch, *, setup: TrainSetup):
  images, labels = batch
  rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  if not setup.frozen_backbone:   # cached features hold their augmented views already
    images = augment_batch(rng, images, pad=setup.augment_pad, flip=setup.augment_flip)
  weights = jnp.asarray(setup.exit_weights)

  def loss_fn(params):
    if setup.frozen_backbone:
      logits, stats = cached_forward(setup.graphdef, params, setup.arch, state.stats, images)
    else:
      logits, stats = forward(setup.graphdef, params, setup.arch, state.stats, images, train=True)
    ce = jnp.stack([optax.softmax_cross_entropy_with_integer_labels(l, labels).mean()
                    for l in logits])
    acc = jnp.stack([(jnp.argmax(l, -1) == labels).mean() for l in logits])
    loss = ce @ weights
    if setup.distill_weight and len(logits) > 1:
      loss += setup.distill_weight * self_distillation(logits, setup.distill_temperature)
    return loss, (stats, acc)

  (loss, (stats, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt = setup.tx.update(grads, state.opt, state.params)
  if setup.frozen_backbone:
    updates = zero_backbone(updates)
  params = optax.apply_updates(state.params, updates)
  finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(params))
  ok = finite & (state.nonfinite_step < 0)
  keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)
  new_state = TrainState(state.step + 1, keep(params, state.params), keep(stats, state.stats),
                         keep(opt, state.opt), state.rng,
                         jnp.where((state.nonfinite_step < 0) & ~finite, state.step,
                                   state.nonfinite_step))
  return new_state, dict(loss=loss, exit_accuracy=acc, finite=finite)


def jit_train_step(setup: TrainSetup):
  return jit(functools.partial(train_step, setup=setup), donate_argnums=0)


@functools.partial(jax.jit, static_argnums=(0,))
def eval_logits(graphdef, params, arch, stats, images):
  """[E, B, K] logits of every exit in inference mode."""
  logits, _ = forward(graphdef, params, arch, stats, images, train=False)
  return jnp.stack(logits)
