"""The docstring examples of dnas_ee.hw run and hold."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["accelerator", "analytic", "bit_scaling", "lut", "core_transfer", "space_lut", "units",
           "zigzag_model"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
  module = importlib.import_module(f"dnas_ee.hw.{name}")
  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
  assert result.failed == 0
