"""Starting from a trained static backbone (``init.backbone``).

Users nearly always start from a network they already trained, and so do the systems
we compare with (SDN's internal classifiers on a frozen backbone, Reference B's
pretrained supernet, Reference A's given MobileNetV2). ``load_backbone`` reads the
trained static network of a run dir (a ``method.name=static`` run, or any run's
``checkpoints/retrain_static``); ``TrainedBackbone.copy_into`` puts its stem, blocks and
head (weights, activation clips and BatchNorm statistics) into a supernet or a derived
network of the same backbone. The weights are shared by every bit width, so a supernet
searching (2, 4, 8) bits starts from an 8-bit backbone as it is.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from dnas_ee.checkpoint import Checkpointer
from dnas_ee.config import ConfigError, config_from_json
from dnas_ee.models.supernet import Supernet
from dnas_ee.train.frozen import BACKBONE_PARTS
from dnas_ee.space.genotype import Genotype, genotype_space

STATIC_CHECKPOINTS = Path("checkpoints") / "retrain_static"


@dataclasses.dataclass(frozen=True)
class TrainedBackbone:
  """The stem, blocks and head of a trained static network.

  Attributes:
    source: the run dir it was read from.
    parts: ``{part: nnx.State}`` (``nnx.Param`` and ``nnx.BatchStat`` leaves).
    bits: the weight/activation width of each block (the static genotype's).
    fingerprint: hash of every array, so caches built from it (``feature_cache``)
      are invalidated when the backbone changes.
  """
  source: str
  parts: dict
  bits: tuple[int, ...]
  fingerprint: str

  def copy_into(self, model: Supernet) -> None:
    """Overwrites ``model``'s stem, blocks and head with the trained ones.

    Raises:
      ConfigError: the backbones differ (names every array whose shape or presence
        differs).
    """
    for part in BACKBONE_PARTS:
      target = nnx.state(getattr(model, part))
      check_same_arrays(self.parts[part], target, part, self.source)
      # Copies: a jitted step donates its state, which would delete the backbone's own
      # arrays for the next network started from it.
      nnx.update(getattr(model, part),
                 jax.tree.map(lambda x: jax.numpy.array(x, copy=True), self.parts[part]))


def _flat(state) -> dict:
  """``{"blocks/2/conv1/kernel": array}`` of a state (nnx's ``.value`` attributes dropped)."""
  def name(path):
    keys = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
    return "/".join(k for k in keys if k != "value")
  return {name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]}


def _shape_problems(source, target) -> list[str]:
  src, dst = _flat(source), _flat(target)
  return [f"{k}: trained {np.shape(src[k]) if k in src else 'missing'} vs this network "
          f"{np.shape(dst[k]) if k in dst else 'missing'}"
          for k in sorted(set(src) | set(dst))
          if k not in src or k not in dst or np.shape(src[k]) != np.shape(dst[k])]


def same_arrays(source, target) -> bool:
  """Whether two states hold the same array names and shapes."""
  return not _shape_problems(source, target)


def check_same_arrays(source, target, part: str, where: str) -> None:
  """Raises one ``ConfigError`` listing every array of ``part`` that differs in shape or
  presence between the trained backbone and the network it is copied into."""
  problems = [f"{part}/{p}" for p in _shape_problems(source, target)]
  if problems:
    shown = "; ".join(problems[:8]) + (f"; ... ({len(problems)} arrays)" if len(problems) > 8 else "")
    raise ConfigError(f"init.backbone={where}: its backbone does not match this run's ({shown}). "
                      "Use a backbone trained with the same backbone.* and data settings, or "
                      "clear init.backbone")


def load_backbone(path) -> TrainedBackbone:
  """The trained static network of the run dir ``path``.

  Raises:
    ConfigError: ``path`` is not a run dir holding a finished static training (the
      message names what is missing and the command that makes it).
  """
  from dnas_ee.train.build import retrain_setup
  run_dir = Path(path).expanduser()
  needed = [run_dir / "config.json", run_dir / "genotype.json", run_dir / STATIC_CHECKPOINTS]
  missing = [str(p) for p in needed if not p.exists()]
  if missing:
    raise ConfigError(f"init.backbone={path}: not a trained run dir ({', '.join(missing)} "
                      "missing). Train one with `dnas-ee run --config C --workdir S "
                      "--config.method.name=static` and pass S")
  config = config_from_json(run_dir / "config.json")
  genotype = Genotype.load(run_dir / "genotype.json")
  space = genotype_space(genotype.static)
  setup, state = retrain_setup(config, space, config.seed)
  ckpt = Checkpointer(run_dir / STATIC_CHECKPOINTS)
  step = ckpt.latest_step()
  if step != config.retrain.steps:
    ckpt.close()
    raise ConfigError(f"init.backbone={path}: its static training has not finished (checkpoint "
                      f"step {step}, of {config.retrain.steps}): resume it with `dnas-ee run "
                      f"--workdir {path}` first")
  state = ckpt.restore(state)
  ckpt.close()
  model = nnx.merge(setup.graphdef, state.params, setup.arch, state.stats)
  parts = {part: nnx.state(getattr(model, part)) for part in BACKBONE_PARTS}
  digest = hashlib.sha256()
  for key, leaf in sorted(_flat(parts).items()):
    digest.update(key.encode())
    digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  return TrainedBackbone(str(run_dir), parts, tuple(genotype.static.backbone_bits),
                         digest.hexdigest()[:16])

