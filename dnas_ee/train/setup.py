"""Search set-up: everything a search loop needs, built from a config.

``prepare_search`` builds the data, the space, the step setup, the replicated state and
the cost context; ``search_batches`` draws a step's (train, val) batches;
``load_search_state`` restores a finished search's supernet (the scored methods and
the one-shot evaluation read it). Used by the search stage, the methods and the
benchmarks; nothing here reads or writes a run dir except the search checkpoint.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dnas_ee.data import load_dataset
from dnas_ee.exits.confidence import confidence_range
from dnas_ee.models.supernet import Supernet
from dnas_ee.train import build, loop, parallel
from dnas_ee.train.search import SearchSetup, init_search_state, split_model
from dnas_ee.train.frozen import BACKBONE_PARTS
from dnas_ee.train.warm_start import same_arrays

# Methods whose search stage trains the supernet's weights only, its architecture frozen at
# the uniform initialization (random search and NSGA-II score candidates with it).
SCORED_METHODS = ("random", "evolutionary")


BACKBONE_MODES = ("train", "frozen")
# search.schedule: exits and bits searched together, or one after the other (the first
# stage's choice pinned in the second: dnas_ee.stages.search).
SEARCH_SCHEDULES = ("joint", "exits_then_bits", "bits_then_exits")
# The architecture leaves a stage can pin (whole leaves: their logits are set and the
# architecture optimizer leaves them as set).
PINNABLE = ("exit_logits", "op_logits", "backbone_bit_logits", "branch_bit_logits",
            "alloc_logits")
# Logit of the trained width of each block in a frozen search: softmax(logits / T) is then
# one-hot to float precision at every temperature the search uses (e^-30 at T = 1).
PINNED_LOGIT = 30.0


@dataclasses.dataclass
class SearchRun:
  """Everything a search loop needs, built from the config (also used by benchmarks).

  ``cache``: the frozen backbone's cached features (``search.backbone='frozen'``), which
  the batches come from instead of ``data``'s images; None otherwise.
  """
  data: object
  space: object
  setup: SearchSetup
  state: object
  ctx: object
  mesh: object
  cache: object = None


def check_backbone_settings(config) -> None:
  """Raises ``ConfigError`` naming a ``search.backbone`` / ``init.backbone`` that cannot
  be used (checked before a run dir is written)."""
  from dnas_ee.config import ConfigError
  mode = config.search.backbone
  if mode not in BACKBONE_MODES:
    raise ConfigError(f"unknown search.backbone {mode!r}; use one of {BACKBONE_MODES}")
  if mode == "frozen" and not config.init.backbone:
    raise ConfigError("search.backbone='frozen' needs a trained backbone: set "
                      "--config.init.backbone=<run dir of a method.name=static run>")
  schedule = config.search.schedule
  if schedule not in SEARCH_SCHEDULES:
    raise ConfigError(f"unknown search.schedule {schedule!r}; use one of {SEARCH_SCHEDULES}")
  if schedule != "joint" and config.method.name != "dnas":
    raise ConfigError(f"search.schedule={schedule!r} is a dnas search; method.name="
                      f"{config.method.name!r} takes search.schedule='joint'")
  if schedule != "joint" and (not tuple(config.space.exit_positions)
                              or len(tuple(config.space.bits)) < 2):
    raise ConfigError(f"search.schedule={schedule!r} searches exits and bits in turn: it needs "
                      "space.exit_positions and at least two space.bits; use 'joint'")
  if schedule == "bits_then_exits" and mode == "frozen":
    raise ConfigError("search.schedule='bits_then_exits' changes the backbone's bits before the "
                      "exits are searched, so the backbone must train: set "
                      "--config.search.backbone='train' (or use 'exits_then_bits', whose exit "
                      "stage runs on the frozen backbone)")
  if config.init.backbone and not Path(config.init.backbone).expanduser().is_dir():
    raise ConfigError(f"init.backbone={config.init.backbone!r} is not a directory: give the run "
                      "dir of a trained static network (`dnas-ee run ... "
                      "--config.method.name=static --workdir S`)")


def load_init_backbone(config):
  """The ``TrainedBackbone`` of ``init.backbone``, or None when it is not set."""
  if not config.init.backbone:
    return None
  from dnas_ee.train.warm_start import load_backbone
  return load_backbone(config.init.backbone)


def backbone_bit_pins(space, bits, whose: str = "init.backbone") -> np.ndarray:
  """``backbone_bit_logits`` one-hot (to float precision) at each block's width ``bits``."""
  logits = np.zeros((space.num_blocks, space.num_bits), np.float32)
  for i, (candidates, b) in enumerate(zip(space.backbone_bits, bits)):
    if b not in candidates:
      from dnas_ee.config import ConfigError
      raise ConfigError(f"{whose}'s block {i + 1} is at {b} bits, not one of space.bits="
                        f"{tuple(candidates)}: add {b} to space.bits")
    logits[i, candidates.index(b)] = PINNED_LOGIT
  return logits


def frozen_architecture(config) -> bool:
  """Whether the search stage trains the supernet's weights only (uniform architecture)."""
  return config.method.name in SCORED_METHODS and config.method.supernet == "uniform"


def carry_weights(source: Supernet, target: Supernet) -> None:
  """Copies every part of ``source`` (stem, blocks, head, branches: weights, clips and
  BatchNorm statistics) into ``target`` where both hold the same arrays; a part whose
  arrays differ (a space without exits has no branches) keeps ``target``'s."""
  for part in (*BACKBONE_PARTS, "branches"):
    src, dst = nnx.state(getattr(source, part)), nnx.state(getattr(target, part))
    if same_arrays(src, dst) and jax.tree.leaves(src):
      # Copies: the jitted step donates its state.
      nnx.update(getattr(target, part), jax.tree.map(lambda x: jnp.array(x, copy=True), src))


def prepare_search(config, mesh=None, data=None, *, pins: dict | None = None,
                   weights_from: Supernet | None = None) -> SearchRun:
  """Builds data, space, step setup, replicated state and cost context from a config.

  ``pins``: ``{leaf: logits}`` for leaves of ``PINNABLE`` that start at the given logits
  and stay there (a staged search's earlier choice); ``weights_from``: a supernet whose
  weights start this one's (a staged search's first stage), after ``init.backbone``'s.
  """
  pins = dict(pins or {})
  unknown = set(pins) - set(PINNABLE)
  if unknown:
    raise ValueError(f"cannot pin {sorted(unknown)}; pinnable: {PINNABLE}")
  data = data if data is not None else load_dataset(config.data)
  space = build.build_space(config, data.image_shape, data.num_classes)
  source = build.build_cost_source(config, space)
  spec, ctx = build.build_objective(config, space, source)
  mesh = mesh or parallel.make_mesh(config.mesh.multi_host)
  s = config.search
  parallel.check_batch_size(s.batch_size, mesh, "search.batch_size")
  frozen = config.search.backbone == "frozen"
  model = Supernet(space, rngs=nnx.Rngs(config.seed), threshold_init=config.exits.search_threshold,
                   threshold_range=confidence_range(config.exits.confidence, data.num_classes),
                   branch_conv=build.BRANCH_CONV[frozen])
  backbone = load_init_backbone(config)
  cache = None
  if backbone is not None:
    backbone.copy_into(model)
  if weights_from is not None:
    carry_weights(weights_from, model)
  if frozen:   # the backbone's widths are the trained ones
    pins.setdefault("backbone_bit_logits", backbone_bit_pins(space, backbone.bits))
  for name, logits in pins.items():
    getattr(model, name)[...] = jnp.asarray(logits, jnp.float32)
  if frozen:
    from dnas_ee.space.genotype import Genotype
    from dnas_ee.train.feature_cache import feature_cache
    static = Genotype.load(Path(backbone.source) / "genotype.json").static
    cache = feature_cache(backbone, static, space, data, config.data,
                          copies=config.search.feature_copies,
                          augment=(config.data.augment_pad, config.data.augment_flip),
                          seed=config.data.seed)
  setup = SearchSetup(
      graphdef=split_model(model)[0], objective=spec,
      w_tx=build.weight_optimizer(s.w_lr, s.w_momentum, s.w_weight_decay, s.steps, s.grad_clip),
      a_tx=build.arch_optimizer(config, pinned=tuple(sorted(pins))),
      op_temperature=build.schedule_from(s.op_temperature, s.steps),
      threshold_temperature=build.schedule_from(config.exits.threshold_temperature, s.steps),
      order=s.order, unroll_lr=s.w_lr if s.unroll_lr < 0 else s.unroll_lr,   # DARTS: xi = w_lr
      warmup_steps=s.steps if frozen_architecture(config) else s.warmup_steps,
      augment_pad=config.data.augment_pad, augment_flip=config.data.augment_flip,
      mixture_mode=s.mixture_mode, gate_mode=s.gate_mode, frozen_backbone=frozen)
  state = parallel.replicate(mesh, init_search_state(model, setup, config.seed))
  return SearchRun(data, space, setup, state, parallel.replicate(mesh, ctx), mesh, cache)


def search_batches(run: SearchRun, config, step: int):
  """(train batch, val batch) of a search step: pure functions of the seed and the step."""
  data, s = run.data, config.search
  if run.cache is not None:
    (*train, train_labels) = run.cache.train.batch(run.mesh, config.seed, step, s.batch_size)
    (*val, val_labels) = run.cache.val.batch(run.mesh, config.seed + 1, step, s.batch_size)
    return (tuple(train), train_labels), (tuple(val), val_labels)
  return (loop.host_batch(run.mesh, data.train.images, data.train.labels, config.seed, step,
                          s.batch_size),
          loop.host_batch(run.mesh, data.val.images, data.val.labels, config.seed + 1, step,
                          s.batch_size))


def arch_logits(graphdef, state) -> dict:
  """The architecture parameters of a search state, by name (``search_arch.json``)."""
  model = nnx.merge(graphdef, state.params, state.arch, state.stats)
  return dict(exit_logits=model.exit_logits[...], op_logits=model.op_logits[...],
              backbone_bit_logits=model.backbone_bit_logits[...],
              branch_bit_logits=model.branch_bit_logits[...], alloc_logits=model.alloc_logits[...],
              exit_thresholds=model.exit_thresholds[...])


def load_search_state(config, workdir, pins: dict | None = None):
  """(SearchRun, state) of the supernet trained by the search stage of ``workdir``, at
  its final step (``pins``: those the search ran with).

  Raises:
    FileNotFoundError: the search has not finished (no final checkpoint).
  """
  from dnas_ee.checkpoint import Checkpointer
  run = prepare_search(config, pins=pins)
  ckpt_dir = Path(workdir) / "checkpoints" / "search"
  ckpt = Checkpointer(ckpt_dir)
  if ckpt.latest_step() != config.search.steps:
    raise FileNotFoundError(f"no final search checkpoint (step {config.search.steps}) in {ckpt_dir}: "
                            f"run `dnas-ee search --workdir {workdir}` first")
  state = ckpt.restore(run.state)
  ckpt.close()
  return run, state
