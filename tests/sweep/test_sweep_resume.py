"""A sweep killed mid-member and rerun gives the table of an uninterrupted one; finished
members are skipped."""
import os
import signal
import subprocess
import sys
import time

import pytest

from support.sweep import ROOT, TINY
from dnas_ee.sweep import run_sweep, sweep_members, write_table
from dnas_ee.sweep.spec import load_sweep

# Latency, energy and the wall-clock columns are left out: the first two need a LUT
# (this space has none), the others are timings.
COMPARED = ("accuracy", "MACs")


def _sweep_file(tmp_path):
  path = tmp_path / "resume_sweep.py"
  overrides = TINY + ["--config.retrain.checkpoint_every=8"]
  path.write_text(f"def get_sweep():\n  return dict(configs={{'d': '{ROOT}/experiments/configs/"
                  f"digits.py'}}, overrides={overrides!r}, methods=['hand_placed'], seeds=(0,))\n")
  return path


def _columns(text):
  lines = [l for l in text.splitlines() if l.startswith("|")]
  header = [c.strip() for c in lines[0].strip("|").split("|")]
  keep = [i for i, c in enumerate(header) if c.startswith(COMPARED)]
  return [[row.strip("|").split("|")[i].strip() for i in keep] for row in lines[2:]]


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_same_table(tmp_path):
  sweep = _sweep_file(tmp_path)
  whole, killed = tmp_path / "whole", tmp_path / "killed"
  run_sweep(sweep, whole, progress=False)
  expected = write_table(whole)
  assert len(_columns(expected)) == 1 and len(_columns(expected)[0]) == 2

  member = sweep_members(load_sweep(sweep))[0]
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  proc = subprocess.Popen([sys.executable, "-m", "dnas_ee.cli", "sweep", "--sweep", str(sweep),
                           "--workdir", str(killed), "--no-progress"], env=env, cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  mid = killed / member.dir_name / "checkpoints" / "retrain_early_exit" / "8"
  while not mid.exists() and proc.poll() is None:
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (killed / member.dir_name / "summary.json").exists()   # it died mid-member

  run_sweep(sweep, killed, progress=False)
  assert _columns(write_table(killed)) == _columns(expected)
  logs = []
  run_sweep(sweep, whole, progress=False, log=logs.append)
  assert any("finished, skipped" in line for line in logs)
