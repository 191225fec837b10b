"""Running a sweep: every member into its own run dir, resumable and idempotent.

A finished member (``summary.json`` present, its ``config.json`` equal to the
member's config) is skipped; an interrupted one resumes through the stages' own
checkpoints (``pipeline.run``); a member whose config changed has another run dir
(its name holds the config's hash), so an old result is never reused. The work
dir's ``sweep.json`` lists the current members (``dnas-ee table`` reads it); its
``shared/`` holds the trainings shared by members (``dnas_ee.stages.shared_training``).

Two executors run the unfinished members: ``local`` (default), one after another in
this process, and ``ray``, members as Ray tasks on a Ray cluster with the shared
trainings upstream of them (``dnas_ee.sweep.executor``). Both give the same run dirs.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from dnas_ee.stages.run_config import STAGES, check_same_config
from dnas_ee.sweep.executor import Resources, SweepError, import_ray, run_on_ray
from dnas_ee.sweep.spec import load_sweep, sweep_members

MANIFEST = "sweep.json"
SHARED = "shared"   # trainings shared by members (dnas_ee.stages.shared_training)
EXECUTORS = ("local", "ray")

__all__ = ["EXECUTORS", "MANIFEST", "Resources", "SHARED", "SweepError", "member_finished",
           "run_sweep", "write_manifest"]


def member_finished(member, run_dir: Path, stages=STAGES) -> bool:
  final = "inherited.json" if stages[-1] == "inherited" else "summary.json"
  if not (run_dir / final).exists():
    return False
  check_same_config(member.config, run_dir)   # equal by the dir's hash; a hand edit is refused
  return True


def write_manifest(sweep: dict, members, workdir: Path) -> None:
  record = dict(sweep=sweep["path"], cost=sweep["cost"],
                members=[dict(dir=m.dir_name, config=m.config_label, setting=m.setting,
                              method=m.method, seed=m.seed, overrides=list(m.overrides))
                         for m in members])
  (workdir / MANIFEST).write_text(json.dumps(record, indent=1))


def run_sweep(path, workdir, *, progress: bool = True, log=print, shared_dir=None,
              executor: str = "local", address: str | None = None,
              resources: dict | None = None) -> list[Path]:
  """Runs every member of the sweep file ``path`` under ``workdir``.

  Args:
    path: the sweep file (``experiments/sweeps/*.py``).
    workdir: the sweep's work dir (one run dir per member, ``sweep.json``, ``shared/``,
      and with ``ray`` the tasks' ``logs/``).
    progress: progress bars (local executor).
    log: where progress lines go.
    shared_dir: the trainings members share (default ``workdir/shared``); several
      sweeps given one share them across sweeps.
    executor: ``"local"`` (in order, in this process) or ``"ray"``.
    address: the Ray cluster (``"auto"``, ``"ray://host:10001"``, ...; None: ``$RAY_ADDRESS``
      or a Ray instance started for the sweep).
    resources: ``cpus`` and ``gpus`` per member (Ray), over the sweep file's ``resources``.

  Returns:
    The members' run dirs, in order.

  Raises:
    SweepError: with ``ray``, members failed (named; the others ran to the end), or
      Ray is not installed.
  """
  if executor not in EXECUTORS:
    raise ValueError(f"unknown executor {executor!r}; use one of {EXECUTORS}")
  if executor == "ray":
    import_ray()   # without Ray: says how to install it, before anything is written
  sweep = load_sweep(path)
  members = sweep_members(sweep)
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  write_manifest(sweep, members, workdir)
  shared = Path(shared_dir) if shared_dir else workdir / SHARED
  total, t0 = len(members), time.time()
  todo = []
  for i, member in enumerate(members, 1):
    run_dir = workdir / member.dir_name
    if member_finished(member, run_dir, sweep["stages"]):
      log(f"[{i}/{total}] {member.name}: finished, skipped ({run_dir.name})")
    else:
      todo.append((i, member))
  if executor == "ray":
    run_on_ray([m for _, m in todo], workdir, shared, sweep["stages"], address=address,
               resources=Resources(**{**sweep["resources"], **(resources or {})}), log=log)
  else:
    from dnas_ee import pipeline
    for i, member in todo:
      for stage in sweep["stages"]:
        log(f"[{i}/{total}] {member.name}: {stage}  ({time.time() - t0:.0f} s)")
        pipeline.run(member.config, workdir / member.dir_name, progress=progress,
                     stages=(stage,), shared_dir=shared)
  log(f"sweep done: {total} members in {workdir} ({time.time() - t0:.0f} s)")
  return [workdir / m.dir_name for m in members]
