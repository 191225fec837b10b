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

from dnas_ee.methods.stage import trains_supernet
from dnas_ee.stages import shared_training as shared
from dnas_ee.stages.run_config import prepare_run_dir
from dnas_ee.stages.timing import record_time, searched_seconds
from dnas_ee.train import loop
from dnas_ee.train.search import jit_search_step
from dnas_ee.train.setup import arch_logits, prepare_search, search_batches


def search(config, workdir, *, progress: bool = True) -> dict:
  """Searches the architecture; writes ``search_arch.json``. Resumes from checkpoints.

  Returns:
    The final architecture parameters by name (lists).
  """
  return search_into(config, prepare_run_dir(config, workdir), progress)


def search_into(config, workdir: Path, progress: bool) -> dict:
  """The search of ``config`` in ``workdir`` (a run dir or a shared dir)."""
  run = prepare_search(config)
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
