"""Helpers of the early-exit tests: derived networks and run dirs with random weights.

Nothing here trains: the executor, the calibration and the evaluation only need
a derived network and the files of a run dir, so the run dirs are written
directly (``config.json``, ``genotype.json``, and "final" retraining checkpoints
of randomly initialized networks), in a second or two.
"""
from __future__ import annotations

import shutil
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

# A small digits space: 8x8 inputs, 3 blocks, exits after blocks 1 and 2.
SMALL = ["--config.backbone.options.stage_widths=(8, 16, 16)",
         "--config.backbone.options.stem_width=8",
         "--config.space.branch_ops=('conv3_s2_x1', 'dwsep3_s1_x2', 'maxpool2_s2', 'identity', "
         "'conv3_s1_x1')",
         "--config.retrain.steps=1", "--config.evaluate.batch_size=64"]


def make_config(overrides=()):
  from dnas_ee.config import apply_overrides, load_config_file
  config = load_config_file(ROOT / "experiments" / "configs" / "digits.py")
  # MACs only unless a test asks for an accelerator (the shipped LUTs cover the default space).
  apply_overrides(config, ["--config.hw.accelerator="] + list(overrides))
  return config


def random_genotype(space, rng, *, min_exits: int = 1):
  """A derived genotype with random exits (at least ``min_exits``), ops and bit widths."""
  from dnas_ee.space.genotype import derive_genotype
  p = len(space.branches)
  exit_logits = rng.standard_normal(p)
  keep = rng.permutation(p)[:min_exits]
  exit_logits[keep] = np.abs(exit_logits[keep]) + 0.1
  return derive_genotype(space, exit_logits, rng.standard_normal((p, space.depth, space.num_ops)),
                         rng.standard_normal((space.num_blocks, space.num_bits)),
                         rng.standard_normal((p, space.num_bits)))


def random_network(genotype, seed: int, *, stats_seed: int | None = None):
  """A ``Supernet`` on the genotype's space with random weights and BatchNorm statistics."""
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from dnas_ee.models.supernet import Supernet
  from dnas_ee.space.genotype import genotype_space
  model = Supernet(genotype_space(genotype), rngs=nnx.Rngs(seed))
  rng = np.random.default_rng(seed if stats_seed is None else stats_seed)
  stats = nnx.state(model, nnx.BatchStat)
  stats = jax.tree.map(lambda v: jnp.asarray(
      rng.uniform(0.5, 2.0, v.shape) if v.ndim and np.all(np.asarray(v) == 1) else
      0.1 * rng.standard_normal(v.shape), v.dtype), stats)
  nnx.update(model, stats)
  return model


def split_network(model):
  """``(setup, state)`` shaped like ``pipeline.load_trained``'s, for ``exit_logits``."""
  from flax import nnx
  from dnas_ee.models.layers import ArchParam
  graphdef, params, arch, stats = nnx.split(model, nnx.Param, ArchParam, nnx.BatchStat)
  return (types.SimpleNamespace(graphdef=graphdef, arch=arch),
          types.SimpleNamespace(params=params, stats=stats))


def write_run(workdir: Path, overrides=(), seed: int = 0) -> Path:
  """A run dir as ``pipeline.retrain`` leaves it, with random weights and 2 exits."""
  from dnas_ee import pipeline
  from dnas_ee.stages.run_dir import network_space, train_setup
  from dnas_ee.checkpoint import Checkpointer
  from dnas_ee.config import save_config
  from dnas_ee.data.shapes import dataset_shape
  from dnas_ee.train import build
  config = make_config(overrides)
  workdir.mkdir(parents=True, exist_ok=True)
  save_config(config, workdir / "config.json")
  space = build.build_space(config, *dataset_shape(config.data))
  genotype = random_genotype(space, np.random.default_rng(seed), min_exits=len(space.branches))
  genotype.save(workdir / "genotype.json")
  for which in pipeline.NETWORKS:
    _, state = train_setup(config, network_space(genotype, which), seed)
    ckpt = Checkpointer(workdir / "checkpoints" / f"retrain_{which}")
    ckpt.save(config.retrain.steps, state)
    ckpt.close()
  return workdir


