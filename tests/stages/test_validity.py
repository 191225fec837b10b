"""One-shot validity of a scored method: its sampled candidates fine-tuned and ranked
against the supernet's scores (Kendall tau), in the run's report."""
import json

import numpy as np
from scipy.stats import kendalltau

from support.runs import tiny_overrides
from dnas_ee.cli import main
from dnas_ee.space.genotype import Genotype
from dnas_ee.stages.validity import VALIDITY_FILE, kendall


def test_random_search_reports_the_supernet_ranking_against_fine_tuning(static_run, tmp_path,
                                                                       feature_cache_dir):
  workdir = tmp_path / "R"
  assert main(["run", "--config", "experiments/configs/digits.py", "--workdir", str(workdir),
               "--no-progress", *tiny_overrides(), f"--config.init.backbone='{static_run}'",
               "--config.search.backbone='frozen'", "--config.method.name='random'",
               "--config.method.evaluations=12", "--config.method.population=4",
               "--config.method.validity_candidates=3", "--config.calibrate.mode='none'"]) == 0
  result = json.loads((workdir / VALIDITY_FILE).read_text())
  record = json.loads((workdir / "method_search.json").read_text())
  assert result["candidates"] == len(record["validity_sample"]) == 3
  for i, (row, sampled) in enumerate(zip(result["rows"], record["validity_sample"])):
    # Each row is its recorded candidate, fine-tuned in its own dir for the run's budget.
    assert row["supernet_accuracy"] == sampled["accuracy"]
    genotype = Genotype.load(workdir / "validity" / f"candidate_{i}" / "genotype.json")
    assert genotype.to_json() == Genotype.from_json(sampled["genotype"]).to_json()
    assert 0.0 <= row["fine_tuned_accuracy"] <= 1.0 and row["fine_tuned_cost"] > 0
  tau = result["accuracy_kendall"]["tau"]
  expected = kendalltau([r["supernet_accuracy"] for r in result["rows"]],
                        [r["fine_tuned_accuracy"] for r in result["rows"]]).statistic
  assert (tau is None and np.isnan(expected)) or np.isclose(tau, expected)
  assert "## One-shot validity" in (workdir / "report.md").read_text()


def test_kendall_is_one_for_the_same_ranking_and_minus_one_reversed():
  assert kendall([1, 2, 3, 4], [10, 20, 30, 40])["tau"] == 1.0
  assert kendall([1, 2, 3, 4], [4, 3, 2, 1])["tau"] == -1.0
  assert kendall([1, 2], [1, 2])["tau"] is None   # too few to rank
