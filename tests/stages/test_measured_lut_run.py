"""A run priced on a LUT measured on this JAX device reports its modelled speed-up next to
the executor's measured one (the same kind of machine on both sides)."""
import json

import pytest

from support.sweep import tiny_config, tiny_space
from dnas_ee import pipeline
from dnas_ee.hw.lut.measure import device_name, measure_space_lut


@pytest.mark.slow
def test_report_puts_the_same_device_modelled_speedup_beside_the_measured_one(tmp_path):
  lut = tmp_path / "measured.json"
  overrides = [f"--config.hw.accelerator='{device_name()}'", f"--config.hw.lut='{lut}'",
               "--config.hw.objective=latency", "--config.method.name='hand_placed'",
               "--config.calibrate.mode='none'"]
  config = tiny_config(*overrides)
  measure_space_lut(tiny_space(config), lut, repeats=2, warmup=1, progress=False)
  summary = pipeline.run(config, tmp_path / "run", progress=False)
  modelled = summary["static"]["latency_s"] / summary["early_exit"]["latency_s"]
  assert summary["modelled_speedup_same_device"] == pytest.approx(modelled)
  assert summary["measured_to_modelled_speedup"] == pytest.approx(
      summary["measured_speedup"] / modelled)
  assert "Same-device check" in (tmp_path / "run" / "report.md").read_text()
  assert json.loads((tmp_path / "run" / "summary.json").read_text())[
      "measured_to_modelled_speedup"] > 0
