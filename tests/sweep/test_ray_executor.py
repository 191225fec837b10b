"""``--executor ray``: a tiny sweep on a local Ray instance gives the local executor's table;
the shared trainings run once, upstream of their members; a failing member stops no
other and is named; a rerun skips the finished members. Without Ray: one line saying how
to install it."""
import csv
import io
import json
import os
import shutil
import sys

import pytest

from support.runs import ONE_EXIT_SPACE, ROOT, tiny_overrides
from dnas_ee import cli
from dnas_ee.config import ConfigError
from dnas_ee.sweep import SweepError, run_sweep, sweep_members, write_table
from dnas_ee.sweep.spec import load_sweep

# Compared between executors: everything but the wall-clock columns.
COMPARED = ("config", "setting", "method", "seed", "dir", "accuracy", "static_accuracy", "macs",
            "latency_s", "energy_j", "edp")


def _sweep_file(tmp_path):
  """2 methods x 2 seeds on the one-exit space; one bit width, so each seed's static
  backbone is shared by both methods (dnas searches, hand_placed does not)."""
  path = tmp_path / "ray_sweep.py"
  overrides = tiny_overrides() + ONE_EXIT_SPACE + ["--config.space.bits=(8,)"]
  path.write_text(f"def get_sweep():\n  return dict(configs={{'d': '{ROOT}/experiments/configs/"
                  f"digits.py'}}, overrides={overrides!r}, methods=['dnas', 'hand_placed'], "
                  f"seeds=(0, 1), resources=dict(cpus=1))\n")
  return path


def _rows(workdir):
  write_table(workdir)
  rows = csv.DictReader(io.StringIO((workdir / "table.csv").read_text()))
  return [{k: row[k] for k in COMPARED} for row in rows]


@pytest.fixture(scope="module")
def local_ray():
  ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'dnas-ee[cluster]')")
  # Ray's out-of-memory monitor kills workers when the whole machine nears its memory
  # limit; on a shared machine other programs' memory would then fail this test.
  monitor = os.environ.get("RAY_memory_monitor_refresh_ms")
  os.environ["RAY_memory_monitor_refresh_ms"] = "0"
  try:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 1024 ** 2)
  finally:
    if monitor is None:
      os.environ.pop("RAY_memory_monitor_refresh_ms")
    else:
      os.environ["RAY_memory_monitor_refresh_ms"] = monitor
  yield ray
  ray.shutdown()


@pytest.mark.slow
def test_ray_sweep_equals_the_local_sweep(tmp_path, local_ray):
  sweep = _sweep_file(tmp_path)
  members = sweep_members(load_sweep(sweep))
  local, remote = tmp_path / "local", tmp_path / "ray"
  run_sweep(sweep, local, progress=False)
  expected = _rows(local)
  assert len(expected) == 4 and all(row["accuracy"] for row in expected)

  # A member whose run dir holds another config fails; the three others run to the end.
  bad = next(m for m in members if m.method == "hand_placed" and m.seed == 1)
  (remote / bad.dir_name).mkdir(parents=True)
  config = json.loads((local / bad.dir_name / "config.json").read_text())
  config["retrain"]["lr"] *= 2
  (remote / bad.dir_name / "config.json").write_text(json.dumps(config))
  lines = []
  with pytest.raises(SweepError, match=r"1 of 4 members failed: .*hand_placed / seed 1 "
                                       r"\(ConfigMismatch: .*retrain.lr"):
    run_sweep(sweep, remote, executor="ray", log=lines.append)
  assert [r for r in _rows(remote) if r["accuracy"]] == [r for r in expected if r["dir"] !=
                                                          bad.dir_name]
  assert any(l.split()[:1] == ["failed"] and "hand_placed / seed 1" in l and "log:" in l
             for l in lines)
  assert sum(l.split()[:1] == ["running"] for l in lines) >= 3

  # Each shared training ran once (one task, one record per logged step), before the
  # members that copy it: one search (dnas) and one static backbone per seed.
  done = [l.split()[2] for l in lines if l.split()[:2] == ["done", "shared"]]
  assert sorted(done) == ["retrain", "retrain", "search", "search"]
  shared = sorted((remote / "shared").iterdir())
  assert [p.name.split("-")[0] for p in shared] == ["retrain", "retrain", "search", "search"]
  for home in shared:
    metrics = home / ("metrics.jsonl" if home.name.startswith("retrain") else
                      "search_metrics.jsonl")
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == sorted(set(steps)), home
  for member in members:
    if member is not bad:
      source = json.loads((remote / member.dir_name / "retrain_static_source.json").read_text())
      assert source["shared_dir"].startswith(str(remote / "shared"))

  # Fixed and rerun: the finished members are skipped, the table is the local one.
  shutil.rmtree(remote / bad.dir_name)
  lines = []
  run_sweep(sweep, remote, executor="ray", log=lines.append)
  assert sum("finished, skipped" in l for l in lines) == 3
  assert not any(l.split()[:2] == ["running", "shared"] and "search" in l for l in lines)
  assert _rows(remote) == expected
  for member in members:
    genotype = lambda root: (root / member.dir_name / "genotype.json").read_text()
    assert genotype(remote) == genotype(local)


def test_without_ray_the_executor_says_how_to_install_it(tmp_path, monkeypatch, capsys):
  monkeypatch.setitem(sys.modules, "ray", None)   # import ray -> ImportError
  sweep = _sweep_file(tmp_path)
  code = cli.main(["sweep", "--sweep", str(sweep), "--workdir", str(tmp_path / "w"),
                   "--executor", "ray"])
  err = capsys.readouterr().err.strip()
  assert code == 1 and len(err.splitlines()) == 1
  assert "pip install 'dnas-ee[cluster]'" in err
  assert not (tmp_path / "w").exists()   # refused before anything is written


def test_resources_per_member_are_checked(tmp_path):
  path = tmp_path / "bad_resources.py"
  path.write_text(f"def get_sweep():\n  return dict(configs={{'d': '{ROOT}/experiments/configs/"
                  f"digits.py'}}, resources=dict(cpu=2))\n")
  with pytest.raises(ConfigError, match="resources.*cpus=N, gpus=M"):
    load_sweep(path)
  path.write_text(path.read_text().replace("cpu=2", "gpus=-1"))
  with pytest.raises(ConfigError, match="gpus=-1 must be a number >= 0"):
    load_sweep(path)
