"""The digits job end to end (reduced): search, derive, retrain, evaluate through the CLI."""
import json

from support.runs import tiny_overrides
from dnas_ee.cli import main
from dnas_ee.space.genotype import Genotype, genotype_space


def test_digits_run_end_to_end(tmp_path, capsys):
  workdir = tmp_path / "run"
  rc = main(["run", "--config", "experiments/configs/digits.py", "--workdir", str(workdir),
             "--no-progress", *tiny_overrides()])
  assert rc == 0
  printed = capsys.readouterr().out
  assert "static" in printed and "early_exit" in printed and "exits:" in printed
  summary = json.loads((workdir / "summary.json").read_text())
  for key in ("dataset", "genotype", "static", "early_exit"):
    assert key in summary
  for which in ("static", "early_exit"):
    assert 0.0 <= summary[which]["accuracy"] <= 1.0
    assert summary[which]["macs"] > 0
  rates = summary["early_exit"]["exit_rates"]
  assert abs(sum(rates) - 1) < 1e-9
  # The summary's figures, recomputed independently from the run dir: the static
  # network's test accuracy from its checkpoint, its MACs from the tests' oracle.
  import numpy as np
  from support import oracle
  from dnas_ee.data import load_dataset
  from dnas_ee.stages.run_dir import exit_logits, load_run_config, load_trained
  config = load_run_config(workdir)
  test = load_dataset(config.data).test
  space, setup, state = load_trained(config, workdir, "static")
  logits = exit_logits(setup, state, test.images, 64)
  assert summary["static"]["accuracy"] == float(np.mean(logits[-1].argmax(-1) == test.labels))
  static_macs = oracle.macs_per_exit(Genotype.load(workdir / "genotype.json").static)[-1]
  assert abs(summary["static"]["macs"] - static_macs) <= 1e-6 * static_macs
  # The decisions were recorded: derivation and trajectory.
  assert "derivation" in summary["genotype"]
  trajectory = json.loads((workdir / "search_trajectory.json").read_text())
  assert trajectory["step"] == list(range(4, 25, 4))
  assert np.asarray(trajectory["gates"]).shape == (6, 2)
  # The genotype rebuilds the derived network from the JSON alone.
  genotype = Genotype.load(workdir / "genotype.json")
  assert json.loads(json.dumps(genotype.to_json())) == summary["genotype"]
  assert len(rates) == genotype_space(genotype).num_exits
  assert (workdir / "config.json").exists() and (workdir / "search_metrics.jsonl").exists()
  # A second `run` resumes every stage from the work dir and gives the same summary.
  assert main(["run", "--workdir", str(workdir), "--no-progress"]) == 0
  again = json.loads((workdir / "summary.json").read_text())
  assert again["early_exit"]["accuracy"] == summary["early_exit"]["accuracy"]


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
  rc = main(["search", "--config", "experiments/configs/digits.py", "--workdir", str(tmp_path),
             "--config.search.lrr=0.1"])
  assert rc == 2
  err = capsys.readouterr().err
  assert "unknown config key 'search.lrr'" in err and "Traceback" not in err
  rc = main(["search", "--config", "experiments/configs/digits.py", "--workdir", str(tmp_path),
             "--config.space.bits=(0, 4)"])
  assert rc == 2
  assert "impossible bit width 0" in capsys.readouterr().err
