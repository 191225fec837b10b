"""Calibration, evaluation and report on a run dir (random weights, no training).

The run dirs come from ``conftest.write_run``: the files ``pipeline.retrain``
leaves, with randomly initialized networks, so every test here is about the
plumbing (files, thresholds, costs, report), not about accuracy.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from dnas_ee import pipeline
from dnas_ee.exits.thresholds import Calibration, thresholds_from_json
from dnas_ee.stages.calibrate import calibrate_run
from dnas_ee.stages.run_dir import evaluation_thresholds

NO_TIMING = dict(latency_samples=0)


def _is_png(path) -> bool:
  data = path.read_bytes()
  return len(data) > 100 and data[:8] == b"\x89PNG\r\n\x1a\n"


def _timing_free(summary: dict) -> dict:
  """The summary without the wall-clock figures (which vary run to run)."""
  out = {k: v for k, v in summary.items() if not k.startswith("measured")}
  out["reductions"] = {side: {k: v for k, v in red.items() if k != "measured_latency"}
                       for side, red in summary["reductions"].items()}
  return out


def test_calibration_writes_thresholds_that_evaluate_uses(run_dir, copy_run, capsys):
  workdir = copy_run(run_dir)
  cal = calibrate_run(workdir, mode="accuracy_floor", max_drop=5.0)
  printed = capsys.readouterr().out
  assert "thresholds (max_prob)" in printed and "dead exits" in printed
  record = json.loads((workdir / "thresholds.json").read_text())
  assert record["split"] == "calib" and record["mode"] == "accuracy_floor"
  assert len(record["thresholds"]) == 2 and record["exit_positions"] == [1, 2]
  np.testing.assert_array_equal(thresholds_from_json(record["thresholds"]), cal.thresholds[:-1])
  saved = Calibration.from_json((workdir / "calibration.json").read_text())
  np.testing.assert_array_equal(saved.thresholds, cal.thresholds)
  config = pipeline.load_run_config(workdir)
  np.testing.assert_array_equal(evaluation_thresholds(config, workdir, 2), cal.thresholds[:-1])

  summary = pipeline.evaluate(config, workdir, **NO_TIMING)
  ee = summary["early_exit"]
  np.testing.assert_array_equal(thresholds_from_json(ee["thresholds"]), cal.thresholds[:-1])
  assert ee["threshold_source"].startswith("calibrated")
  dead = [k for k in range(2) if ee["exit_rates"][k] == 0]
  assert ee["dead_exits"] == dead
  # the summary's exit rates are those of the reference on the test split
  from dnas_ee.data import load_dataset
  space, setup, state = pipeline.load_trained(config, workdir, "early_exit")
  data = load_dataset(config.data)
  logits = pipeline.exit_logits(setup, state, data.test.images, 64)
  conf, _ = pipeline.exit_table(logits, data.test.labels, config.exits.confidence)
  taken = pipeline.first_exit(conf, cal.thresholds[:-1])
  np.testing.assert_allclose(ee["exit_rates"], np.bincount(taken, minlength=3) / len(taken))


def test_calibration_budget_and_cli(run_dir, copy_run):
  from dnas_ee.cli import main
  workdir = copy_run(run_dir)
  assert main(["calibrate", "--workdir", str(workdir), "--mode", "budget", "--budget", "1.0"]) == 0
  record = json.loads((workdir / "thresholds.json").read_text())
  assert record["mode"] == "budget" and record["cost_ratio"] <= 1.0 + 1e-9
  with pytest.raises(ValueError, match="lowest achievable cost ratio"):
    calibrate_run(workdir, mode="budget", budget=0.01, verbose=False)
  with pytest.raises(ValueError, match="unknown calibration mode"):
    calibrate_run(workdir, mode="cheapest")


def test_calibrated_thresholds_of_another_genotype_are_an_error(run_dir, copy_run):
  workdir = copy_run(run_dir)
  (workdir / "thresholds.json").write_text(json.dumps({"thresholds": [0.5]}))
  config = pipeline.load_run_config(workdir)
  with pytest.raises(ValueError, match="holds 1 thresholds but the network has 2"):
    pipeline.evaluate(config, workdir, **NO_TIMING)
  (workdir / "thresholds.json").write_text(json.dumps(
      {"thresholds": [0.5, "inf"], "confidence": "margin"}))
  with pytest.raises(ValueError, match="calibrated for the 'margin' confidence"):
    pipeline.evaluate(config, workdir, **NO_TIMING)


def test_evaluate_writes_report_and_reproduces_from_a_copy(run_dir, copy_run, tmp_path):
  workdir = copy_run(run_dir)
  calibrate_run(workdir, mode="accuracy_floor", max_drop=5.0, verbose=False)
  config = pipeline.load_run_config(workdir)
  summary = pipeline.evaluate(config, workdir, latency_samples=6)
  for key in ("dataset", "genotype", "static", "early_exit", "macs_reduction",
              "accuracy_drop_points"):
    assert key in summary
  for which in ("static", "early_exit"):
    assert {"accuracy", "macs", "exit_rates"} <= set(summary[which])
  measured = summary["measured"]
  assert measured["samples"] == 6
  for net in ("static", "early_exit", "early_exit_final_only"):
    assert measured[net]["median_s"] > 0
  assert summary["measured_speedup"] > 0
  assert "measured_latency" in summary["reductions"]["vs_static"]
  assert "measured_latency" in summary["reductions"]["vs_final_exit"]
  assert json.loads((workdir / "summary.json").read_text())["early_exit"] == summary["early_exit"]
  report = (workdir / "report.md").read_text()
  assert "| network | accuracy | exit rates | MACs (model) |" in report
  assert "| static backbone |" in report and "| early-exit |" in report
  assert "measured latency" in report and "vs its own final exit alone" in report
  assert _is_png(workdir / "pareto_test.png") and _is_png(workdir / "exit_distribution.png")

  copy = tmp_path / "copied"
  shutil.copytree(workdir, copy)
  for name in ("summary.json", "report.md", "pareto_test.png", "exit_distribution.png"):
    (copy / name).unlink()
  again = pipeline.evaluate(pipeline.load_run_config(copy), copy, latency_samples=6)
  assert _timing_free(again) == _timing_free(summary)
  assert (copy / "report.md").exists() and _is_png(copy / "pareto_test.png")


def test_evaluate_with_lut_metrics(lut_run_dir, copy_run):
  workdir = copy_run(lut_run_dir)
  cal = calibrate_run(workdir, mode="accuracy_floor", max_drop=5.0, verbose=False)
  record = json.loads((workdir / "thresholds.json").read_text())
  # EDP is pruned factor by factor (latency, energy): the thresholds' cost is the deployed one
  assert record["metric"] == "edp" and record["pruned"] and cal.pruned is True
  summary = pipeline.evaluate(pipeline.load_run_config(workdir), workdir, **NO_TIMING)
  for which in ("static", "early_exit"):
    assert {"latency_s", "energy_j", "edp"} <= set(summary[which])
  for side in ("vs_static", "vs_final_exit"):
    assert {"macs", "latency_s", "energy_j", "edp"} <= set(summary["reductions"][side])
  assert summary["pareto_test"]["metric"] == "edp"
  report = (workdir / "report.md").read_text()
  assert "EDP (model)" in report and "energy (model)" in report


def test_objective_without_lut_falls_back_to_macs(run_dir, copy_run):
  from dnas_ee.config import save_config
  workdir = copy_run(run_dir)
  config = pipeline.load_run_config(workdir)
  config.hw.objective = "latency"
  save_config(config, workdir / "config.json")
  calibrate_run(workdir, mode="accuracy_floor", max_drop=5.0, verbose=False)
  record = json.loads((workdir / "thresholds.json").read_text())
  assert record["metric"] == "macs" and "using MACs instead" in record["note"]


@pytest.mark.parametrize("name", ["config.json", "genotype.json", "checkpoints/retrain_early_exit",
                                  "checkpoints/retrain_static"])
def test_missing_run_file_is_named(run_dir, copy_run, name):
  workdir = copy_run(run_dir)
  config = pipeline.load_run_config(workdir)
  path = workdir / name
  shutil.rmtree(path) if path.is_dir() else path.unlink()
  with pytest.raises(FileNotFoundError, match=name.replace("/", ".")) as err:
    pipeline.evaluate(config, workdir, **NO_TIMING)
  assert "dnas-ee" in str(err.value)                  # names the command that writes it
  with pytest.raises(FileNotFoundError, match=name.split("/")[-1]):
    calibrate_run(workdir, mode="accuracy_floor")
  assert not (workdir / "summary.json").exists()
  assert not (workdir / "thresholds.json").exists()


def test_unfinished_retraining_is_named(run_dir, copy_run):
  workdir = copy_run(run_dir)
  config = pipeline.load_run_config(workdir)
  shutil.rmtree(workdir / "checkpoints" / "retrain_static" / str(config.retrain.steps))
  with pytest.raises(FileNotFoundError, match="final retraining checkpoint"):
    pipeline.evaluate(config, workdir, **NO_TIMING)


def test_network_costs_agree_with_the_discrete_costs(run_dir):
  import dataclasses
  from support import oracle
  from dnas_ee.cost.network import objective_costs
  from dnas_ee.train.build import network_costs
  from dnas_ee.space.genotype import Genotype, genotype_space
  from dnas_ee.train import build
  config = pipeline.load_run_config(run_dir)
  genotype = Genotype.load(run_dir / "genotype.json")
  space, static_space = genotype_space(genotype), genotype_space(genotype.static)
  source = build.build_cost_source(config, space)
  costs, static = network_costs(config, space), network_costs(config, static_space)
  assert costs.additive and costs.metrics == ("macs", "weight_bytes", "bitops")
  np.testing.assert_allclose(costs.cumulative, oracle.exit_costs(genotype, source))
  np.testing.assert_allclose(costs.backbone, static.cumulative[-1])        # same backbone
  assert np.all(costs.branch > 0)
  np.testing.assert_allclose(costs.deployed([np.inf, 0.5])[1],
                             costs.cumulative[1] - costs.branch[0])
  # pruning by subtraction equals the costs of the network without the pruned exit
  without_first = oracle.exit_costs(dataclasses.replace(genotype, exits=genotype.exits[1:]), source)
  np.testing.assert_allclose(costs.deployed([np.inf, 0.5])[1:], without_first)
  obj = objective_costs("macs", costs, static)
  assert obj.metric == "macs" and obj.reference == static.cumulative[-1, 0]
  np.testing.assert_allclose(obj.branch, costs.branch[:, 0])
  weighted = objective_costs("weighted", costs, static, {"macs": 1.0, "weight_bytes": 1.0})
  assert weighted.reference == pytest.approx(2.0)
  with pytest.raises(ValueError, match="unknown hw.objective"):
    objective_costs("speed", costs, static)


def test_branches_on_other_cores_are_pruned_by_recomputing(tmp_path):
  """Multi-core: a branch on another core overlaps the backbone, so its latency is
  no subtraction; the deployed costs are those of the network without it."""
  from exits_support import write_run
  from dnas_ee.cost.network import objective_costs, prune_space
  from dnas_ee.train.build import network_costs
  from dnas_ee.space.genotype import Genotype, genotype_space
  workdir = write_run(tmp_path / "multicore", ["--config.hw.accelerator=quad_core_edge_tpu_like",
                                               "--config.hw.objective=latency",
                                               "--config.retrain.steps=1"], seed=2)
  data = json.loads((workdir / "genotype.json").read_text())
  for gene in data["exits"]:
    gene["parallel"] = True
  (workdir / "genotype.json").write_text(json.dumps(data))
  config = pipeline.load_run_config(workdir)
  genotype = Genotype.load(workdir / "genotype.json")
  space = genotype_space(genotype)
  costs = network_costs(config, space)
  assert not costs.additive
  for tau, keep in (([np.inf, 0.5], [1]), ([0.5, np.inf], [0]), ([np.inf, np.inf], [])):
    expected, _ = pipeline.network_exit_costs(config, prune_space(space, keep))
    np.testing.assert_allclose(costs.deployed(tau)[keep + [2]], expected)
  static = network_costs(config, genotype_space(genotype.static))
  obj = objective_costs("latency", costs, static)
  assert obj.branch is None and "other cores" in obj.note
  cal = calibrate_run(workdir, mode="accuracy_floor", max_drop=5.0, verbose=False)
  assert not cal.pruned
  summary = pipeline.evaluate(config, workdir, **NO_TIMING)
  assert summary["early_exit"]["final_only"]["latency_s"] == pytest.approx(costs.backbone[costs.metrics.index("latency_s")])
