"""A one-shot lambda sweep (search, derive, inherited): the searched cost falls as lambda rises."""
import json

from support.runs import ONE_EXIT_SPACE
from support.sweep import ROOT, TINY
from dnas_ee.sweep import run_sweep
from dnas_ee.sweep.front import front_rows, write_front


def test_lambda_sweep_traces_a_front_whose_cost_falls(tmp_path):
  sweep = tmp_path / "lambda_sweep.py"
  overrides = TINY + ONE_EXIT_SPACE + ["--config.hw.objective=bitops",
                                       "--config.search.warmup_steps=2"]
  settings = {f"lambda {lam}": [f"--config.loss.lam.kind=constant", f"--config.loss.lam.start={lam}",
                                f"--config.loss.lam.end={lam}"] for lam in (0.0, 30.0)}
  sweep.write_text(
      f"def get_sweep():\n  return dict(configs={{'d': '{ROOT}/experiments/configs/digits.py'}}, "
      f"overrides={overrides!r}, settings={settings!r}, methods=['dnas'], seeds=(0,), "
      f"stages=('search', 'derive', 'inherited'))\n")
  run_sweep(sweep, tmp_path / "runs", progress=False)
  rows = front_rows(tmp_path / "runs")
  assert [r["lam"] for r in rows] == [0.0, 30.0]
  assert rows[1]["cost_ratio"] < rows[0]["cost_ratio"]     # the cost responds to lambda
  assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
  text = write_front(tmp_path / "runs", tmp_path / "out")
  assert "non-increasing" in text and (tmp_path / "out" / "front.png").exists()
  # A rerun skips every finished member (inherited.json is the final artifact).
  run_sweep(sweep, tmp_path / "runs", progress=False, log=lambda m: logs.append(m))
  assert all("skipped" in m for m in logs if "/ seed 0:" in m)


logs = []
