"""Run dirs never lie: another config is refused (keys named), an invalid one writes nothing."""
import json

from support.sweep import TINY, tiny_config
from dnas_ee import pipeline
from dnas_ee.stages.timing import searched_seconds
from dnas_ee.cli import main

DIGITS = "experiments/configs/digits.py"
STATIC = TINY + ["--config.method.name='static'"]


def test_invalid_config_writes_nothing(tmp_path, capsys):
  workdir = tmp_path / "run"
  assert main(["run", "--config", DIGITS, "--workdir", str(workdir), *TINY,
               "--config.space.bits=(0, 4)"]) == 2
  assert main(["run", "--config", DIGITS, "--workdir", str(workdir), *TINY,
               "--config.method.name='nas'"]) == 2
  err = capsys.readouterr().err
  assert "impossible bit width 0" in err and "unknown method.name 'nas'" in err
  assert not workdir.exists()


def test_changed_config_is_refused_and_the_dir_still_works(tmp_path, capsys):
  workdir = tmp_path / "run"
  pipeline.run(tiny_config("--config.method.name='static'"), workdir, stages=("search", "derive"))
  saved = (workdir / "config.json").read_text()
  rc = main(["run", "--config", DIGITS, "--workdir", str(workdir), *STATIC,
             "--config.retrain.steps=5", "--config.seed=1", "--no-progress"])
  assert rc == 2
  err = capsys.readouterr().err
  assert "retrain.steps: 16 -> 5" in err and "seed: 0 -> 1" in err
  assert "new --workdir" in err and "--restart" in err
  assert (workdir / "config.json").read_text() == saved and (workdir / "genotype.json").exists()
  # The dir is intact: later stages still run on its saved config.
  assert main(["derive", "--workdir", str(workdir)]) == 0
  # --restart clears only what the change makes stale (a retraining key: not the genotype).
  capsys.readouterr()
  assert main(["derive", "--workdir", str(workdir), "--config.retrain.steps=5", "--restart"]) == 0
  assert "cleared retrain, calibrate, evaluate" in capsys.readouterr().out
  assert json.loads((workdir / "config.json").read_text())["retrain"]["steps"] == 5


def test_out_of_range_calibration_target_is_an_error(tmp_path, capsys):
  assert main(["calibrate", "--workdir", str(tmp_path), "--mode", "budget", "--budget", "2"]) == 2
  assert "budget 2 is out of range" in capsys.readouterr().err


def test_a_resumed_search_counts_the_time_before_its_checkpoint(tmp_path):
  (tmp_path / "checkpoints" / "search" / "8").mkdir(parents=True)
  (tmp_path / "checkpoints" / "search" / "4").mkdir()
  (tmp_path / "search_metrics.jsonl").write_text(
      "".join(json.dumps(dict(step=s, time_s=10.0 * s)) + "\n" for s in (4, 8, 12)))
  assert searched_seconds(tmp_path) == 80.0      # step 12 was lost with the process
  assert searched_seconds(tmp_path / "fresh") == 0.0
