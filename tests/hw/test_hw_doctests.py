"""The docstring examples of dnas_ee.hw run and hold."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["accelerators.load", "accelerators.schema", "accelerators.units", "models.analytic",
           "models.bit_scaling", "models.core_transfer", "models.zigzag_model", "lut.format",
           "lut.build", "lut.space", "lut.cost_source"]    # lut.layer_costs: tests/cost


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
  module = importlib.import_module(f"dnas_ee.hw.{name}")
  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
  assert result.failed == 0
