"""Shared fixtures of the hardware tests: a tiny, hand-checkable accelerator description."""
from __future__ import annotations

from pathlib import Path

import pytest

from hw_tiny_accelerator import write_tiny


@pytest.fixture
def tiny_path(tmp_path) -> Path:
  return write_tiny(tmp_path)


@pytest.fixture
def tiny(tiny_path):
  from dnas_ee.hw.accelerators.load import load_accelerator
  return load_accelerator(tiny_path)
