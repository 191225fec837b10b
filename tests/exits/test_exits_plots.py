"""Tests of dnas_ee.exits.plots: files are written and are PNGs."""
from __future__ import annotations

import numpy as np
import pytest

from dnas_ee.exits.thresholds import calibrate_budget
from dnas_ee.exits.plots import plot_exit_distribution, plot_pareto

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(path) -> bool:
  data = path.read_bytes()
  return len(data) > 100 and data[:8] == PNG_MAGIC


@pytest.fixture(scope="module")
def calibration():
  rng = np.random.default_rng(0)
  conf = rng.random((200, 3))
  correct = rng.random((200, 3)) < 0.5 + 0.4 * conf
  return calibrate_budget(conf, correct, [1.0, 2.5, 4.0], budget=0.8, reference_cost=4.0,
                          num_candidates=8)


def test_plot_pareto_writes_png(tmp_path, calibration):
  path = tmp_path / "sub" / "pareto.png"
  plot_pareto(calibration.front, calibration, (4.0, 0.7), path, cost_label="MACs (M)")
  assert is_png(path)
  bare = tmp_path / "bare.png"
  plot_pareto(calibration.front, None, None, str(bare), cost_label="energy (J)")
  assert is_png(bare)


def test_plot_exit_distribution_writes_png(tmp_path, calibration):
  path = tmp_path / "exits.png"
  plot_exit_distribution(calibration.exit_rates, ["exit 1", "exit 2", "final"], path)
  assert is_png(path)
  with pytest.raises(ValueError, match="one name per exit"):
    plot_exit_distribution(calibration.exit_rates, ["exit 1"], tmp_path / "bad.png")
