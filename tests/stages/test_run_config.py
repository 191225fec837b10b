"""A run that fails on bad input before any stage produced a result leaves no config.json
behind (so the corrected rerun is not refused as another config): every value the stages
read is validated first, with one error naming the key and the fix."""
import json

import pytest

from support.runs import tiny_overrides
from dnas_ee.cli import main
from dnas_ee.config import save_config

DIGITS = "experiments/configs/digits.py"

# (overrides, what the error must say: the key, and the way out)
BAD = {
    "penalty": (["--config.loss.penalty='quadratic'"], ["loss.penalty", "'linear'"]),
    "task": (["--config.loss.task='mean'"], ["loss.task", "'expected'"]),
    "exit weights": (["--config.loss.exit_weights=(1.0,)"], ["loss.exit_weights", "3 entries"]),
    "objective": (["--config.hw.objective='speed'"], ["hw.objective", "'edp'"]),
    "objective needs hardware": (["--config.hw.objective='edp'"],
                                 ["hw.objective='edp'", "--config.hw.accelerator"]),
    "accelerator": (["--config.hw.accelerator='tpu'"], ["hw.accelerator='tpu'", "edge_tpu_like"]),
    "lut": (["--config.hw.accelerator='edge_tpu_like'", "--config.hw.lut='/nonexistent/lut.json'"],
            ["hw.lut='/nonexistent/lut.json'", "dnas-ee lut build"]),
    "missing data dir": (["--config.data.name='cifar10'", "--config.data.dir='/nonexistent'"],
                         ["data.dir /nonexistent", "--config.data.dir"]),
    "unset data dir": (["--config.data.name='svhn'"], ["data.dir", "--config.data.dir="]),
    "data set": (["--config.data.name='cifar11'"], ["data.name", "cifar10"]),
    "mixture mode": (["--config.search.mixture_mode='gumble'"],
                     ["search.mixture_mode", "'gumbel'"]),
    "gate mode": (["--config.search.gate_mode='hard'"], ["search.gate_mode", "'sigmoid'"]),
    "order": (["--config.search.order='third'"], ["search.order", "'first'"]),
    "unrolled step": (["--config.search.order='second'", "--config.search.unroll_lr=0.0"],
                      ["search.unroll_lr", "search.order='first'"]),
    "schedule": (["--config.search.op_temperature.kind='cosin'"],
                 ["search.op_temperature", "'cosine'"]),
    "batch size": (["--config.retrain.batch_size=0"], ["retrain.batch_size", "positive"]),
    "backbone mode": (["--config.search.backbone='fixed'"], ["search.backbone", "'frozen'"]),
    "initial backbone": (["--config.init.backbone='/nonexistent'"],
                         ["init.backbone", "method.name=static"]),
    "confidence": (["--config.exits.confidence='max'"], ["exits.confidence", "'max_prob'"]),
    "derive rule": (["--config.derive.rule='best'"], ["derive.rule", "'top_k'"]),
    "method": (["--config.method.name='nas'"], ["method.name", "'dnas'"]),
    "calibration mode": (["--config.calibrate.mode='floor'"],
                         ["calibrate.mode", "'accuracy_floor'"]),
    "calibration reference": (["--config.calibrate.reference='teacher'"],
                              ["calibrate.reference", "'static'"]),
    "calibration target": (["--config.calibrate.mode='budget'", "--config.calibrate.budget=2.0"],
                           ["budget 2", "--config.calibrate.budget="]),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_value_is_one_clear_error_and_writes_nothing(tmp_path, capsys, case):
  overrides, said = BAD[case]
  workdir = tmp_path / "run"
  assert main(["run", "--config", DIGITS, "--workdir", str(workdir), "--no-progress",
               *tiny_overrides(), *overrides]) == 2
  err = capsys.readouterr().err
  assert err.startswith("dnas-ee: error: ") and err.count("\n") == 1, err
  assert "Traceback" not in err
  for text in said:
    assert text in err, (text, err)
  assert not (workdir / "config.json").exists() and not workdir.exists()


def test_the_corrected_rerun_works(tmp_path, capsys):
  """The issue's two cases in one run dir, then the corrected run is accepted."""
  workdir = tmp_path / "run"
  search = ["search", "--config", DIGITS, "--workdir", str(workdir), "--no-progress",
            *tiny_overrides(), "--config.search.steps=2", "--config.search.warmup_steps=1"]
  assert main([*search, "--config.loss.penalty='quadratic'"]) == 2
  assert main([*search, "--config.data.name='cifar10'", "--config.data.dir='/nonexistent'"]) == 2
  assert not workdir.exists()
  capsys.readouterr()
  assert main([*search, "--config.loss.penalty='log'"]) == 0, capsys.readouterr().err
  assert json.loads((workdir / "config.json").read_text())["loss"]["penalty"] == "log"
  assert (workdir / "search_arch.json").exists()


def test_data_that_cannot_be_read_leaves_no_config_behind(tmp_path, capsys):
  """A data dir that exists but lacks the data passes validation (files are read by the
  first stage that loads them): the failed run still leaves nothing behind."""
  empty, workdir = tmp_path / "empty", tmp_path / "run"
  empty.mkdir()
  args = ["run", "--config", DIGITS, "--workdir", str(workdir), "--no-progress",
          *tiny_overrides(), "--config.data.name='cifar10'", f"--config.data.dir='{empty}'"]
  assert main(args) == 2
  assert "CIFAR-10 not found in" in capsys.readouterr().err
  assert not workdir.exists()
  workdir.mkdir()                      # a dir the user made: kept, only the config goes
  assert main(args) == 2
  assert workdir.is_dir() and not list(workdir.iterdir())


def test_a_failed_stage_keeps_the_config_it_found(tmp_path, tiny_config, capsys):
  """The run dir already held this config (an earlier run's): a failure keeps it."""
  from dnas_ee.config import apply_overrides
  empty, workdir = tmp_path / "empty", tmp_path / "run"
  empty.mkdir()
  workdir.mkdir()
  apply_overrides(tiny_config, ["--config.data.name='cifar10'", f"--config.data.dir='{empty}'"])
  save_config(tiny_config, workdir / "config.json")
  assert main(["search", "--workdir", str(workdir), "--no-progress"]) == 2
  assert "CIFAR-10 not found in" in capsys.readouterr().err
  assert (workdir / "config.json").exists()
