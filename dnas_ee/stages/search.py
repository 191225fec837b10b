"""The search stage: trains the supernet and writes ``search_arch.json``.

Resumes from the latest checkpoint in ``checkpoints/search``. In a sweep, a search
shared by several members (same search config) runs once in the sweep's shared dir
and is copied into each member (``dnas_ee.stages.shared_training``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from flax import nnx

from dnas_ee.config import save_config
from dnas_ee.data.shapes import dataset_shape
from dnas_ee.methods.encoding import one_hot_arch
from dnas_ee.methods.stage import derive_searched_run, trains_supernet
from dnas_ee.space.genotype import Genotype
from dnas_ee.stages import shared_training as shared
from dnas_ee.stages.run_config import prepare_run_dir
from dnas_ee.stages.timing import record_time, searched_seconds
from dnas_ee.train import build, loop
from dnas_ee.train.search import jit_search_step
from dnas_ee.train.setup import (PINNED_LOGIT, arch_logits, backbone_bit_pins, load_init_backbone,
                                 load_search_state, prepare_search, search_batches)


def search(config, workdir, *, progress: bool = True) -> dict:
  """Searches the architecture; writes ``search_arch.json``. Resumes from checkpoints.

  Returns:
    The final architecture parameters by name (lists).
  """
  return search_into(config, prepare_run_dir(config, workdir), progress)


def search_into(config, workdir: Path, progress: bool) -> dict:
  """The search of ``config`` in ``workdir`` (a run dir or a shared dir), staged by
  ``search.schedule``."""
  if config.search.schedule == "joint":
    return _search_run(config, workdir, progress)
  return _staged_search(config, workdir, progress)


def _search_run(config, workdir: Path, progress: bool, pins=None, weights_from=None) -> dict:
  """One search of ``config`` in ``workdir``: resumes, writes ``search_arch.json``."""
  run = prepare_search(config, pins=pins, weights_from=weights_from)
  step_fn = jit_search_step(run.setup)
  state = loop.fit(
      run.state, lambda state, train, val: step_fn(state, train, val, run.ctx),
      lambda step: search_batches(run, config, step), steps=config.search.steps,
      cadence=loop.Cadence.from_config(config.search),
      checkpoint_dir=workdir / "checkpoints" / "search",
      metrics_path=workdir / "search_metrics.jsonl",
      tensorboard_dir=workdir / "tensorboard" / "search",
      name="search", progress=progress, postfix=dict(loss="loss", cost="cost_ratio"),
      advice="Lower search.w_lr or search.a_lr or loss.lam, or set search.grad_clip.")
  arch = {k: np.asarray(v).tolist() for k, v in arch_logits(run.setup.graphdef, state).items()}
  if loop.is_primary():
    (workdir / "search_arch.json").write_text(json.dumps(arch, indent=1))
    write_trajectory(config, run.space, workdir)
  return arch


# A staged search's first stage: its own run dir inside the search's (config.json,
# checkpoints, search_arch.json and the genotype whose choice the second stage pins).
FIRST_STAGE_DIR = "search_first_stage"


def stage_configs(config):
  """(first, second) configs of a staged search (``search.schedule``), each a joint search.

  exits_then_bits: the exits (placement, branch ops and bits, thresholds) at the backbone's
  bits (``init.backbone``'s, or the widest), on the frozen backbone if
  ``search.backbone='frozen'``; then the backbone's bits with those exits pinned, the
  backbone training. bits_then_exits: the backbone's bits in a space without exits; then
  the exits with those bits pinned.
  """
  first, second = config.copy_and_resolve_references(), config.copy_and_resolve_references()
  for c in (first, second):
    c.search.schedule = "joint"
  second.search.backbone = "train"
  if config.search.schedule == "bits_then_exits":
    first.space.exit_positions = ()
  return first, second


def first_stage_pins(config, first, space) -> dict:
  """What the first stage pins: exits_then_bits holds the backbone at its trained bits
  (``init.backbone``'s, else the widest); a frozen first stage pins them itself."""
  if config.search.schedule != "exits_then_bits" or first.search.backbone == "frozen":
    return {}
  backbone = load_init_backbone(first)
  bits = backbone.bits if backbone is not None else [max(c) for c in space.backbone_bits]
  return {"backbone_bit_logits": backbone_bit_pins(space, bits)}


def second_stage_pins(config, space, chosen: Genotype) -> dict:
  """The second stage's pins: the first stage's choice (``chosen``), as logits."""
  if config.search.schedule == "bits_then_exits":
    return {"backbone_bit_logits": backbone_bit_pins(space, chosen.backbone_bits,
                                                     "the bit stage's genotype")}
  arch = one_hot_arch(space, chosen)
  sign = lambda p: PINNED_LOGIT * (2.0 * np.asarray(p) - 1.0)   # 1 -> +30, 0 -> -30
  return dict(exit_logits=sign(arch.gates), op_logits=PINNED_LOGIT * np.asarray(arch.ops),
              branch_bit_logits=PINNED_LOGIT * np.asarray(arch.branch_bits),
              alloc_logits=sign(arch.parallel))


def _staged_search(config, workdir: Path, progress: bool) -> dict:
  """The two searches of ``search.schedule``: the first in ``FIRST_STAGE_DIR`` (derived
  there as its own dnas run), the second in ``workdir`` with the first's choice pinned and
  its weights carried over. Each resumes; a finished first stage is not rerun."""
  first, second = stage_configs(config)
  first_dir = Path(workdir) / FIRST_STAGE_DIR
  first_dir.mkdir(parents=True, exist_ok=True)
  if loop.is_primary():
    save_config(first, first_dir / "config.json")
  space = build.build_space(first, *dataset_shape(config.data))
  pins = first_stage_pins(config, first, space)
  if not (first_dir / "search_arch.json").exists():
    _search_run(first, first_dir, progress, pins=pins)
  chosen = derive_searched_run(first, first_dir)
  if loop.is_primary():
    chosen.save(first_dir / "genotype.json")
  run, state = load_search_state(first, first_dir, pins=pins)
  trained = nnx.merge(run.setup.graphdef, state.params, state.arch, state.stats)
  full_space = build.build_space(second, *dataset_shape(config.data))
  return _search_run(second, workdir, progress, weights_from=trained,
                     pins=second_stage_pins(config, full_space, chosen))


def write_trajectory(config, space, workdir: Path) -> None:
  """``search_trajectory.json`` and its plots (``plots/search_*.png``) from the metrics log."""
  from dnas_ee.train.trajectory import plot_trajectory, trajectory_from_metrics
  traj = trajectory_from_metrics(workdir / "search_metrics.jsonl")
  (workdir / "search_trajectory.json").write_text(json.dumps(traj))
  plot_trajectory(traj, workdir / "plots", positions=[b.position for b in space.branches],
                  slot_ops=[b.slot_ops for b in space.branches], bits=space.backbone_bits[0],
                  warmup_steps=config.search.warmup_steps)


def search_stage(config, workdir, *, progress: bool = True, shared_dir=None) -> None:
  """The ``search`` stage of ``dnas-ee run``: searches when the method trains a supernet
  and the search has not finished, records its wall-clock in ``timing.json``; else only
  prepares the run dir."""
  workdir = Path(workdir)
  if not trains_supernet(config) or (workdir / "search_arch.json").exists():
    prepare_run_dir(config, workdir)
    return
  t0 = time.time()
  if shared_dir is None:
    before = searched_seconds(workdir)   # a resumed search counts its earlier runs
    search(config, workdir, progress=progress)
    record_time(workdir, "search_s", before + time.time() - t0)
  else:
    record_time(workdir, "search_s", _shared_search(config, workdir, shared_dir, progress))


def _shared_search(config, workdir: Path, shared_dir, progress: bool) -> float:
  """Runs (or finds) the search of ``config`` in ``shared_dir`` and copies it into
  ``workdir``; returns its wall-clock."""
  prepare_run_dir(config, workdir)
  home = shared.shared_dir_for(shared_dir, shared.search_inputs(config))
  if not (home / "search_arch.json").exists():
    t0, before = time.time(), searched_seconds(home)
    search_into(config, home, progress)
    record_time(home, "search_s", before + time.time() - t0)
  shared.copy_search(home, workdir, config.search.steps)
  return json.loads((home / "timing.json").read_text())["search_s"]
