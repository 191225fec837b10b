"""Fixtures of the early-exit tests (helpers in exits_support.py)."""
import shutil
from pathlib import Path

import pytest

from exits_support import SMALL, write_run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
  """A small run dir (MACs only), shared: copy it (``copy_run``) before changing it."""
  return write_run(tmp_path_factory.mktemp("run") / "small", SMALL)


@pytest.fixture(scope="session")
def lut_run_dir(tmp_path_factory) -> Path:
  """A run dir of the default digits space on the shipped edge_tpu_like LUT (EDP objective)."""
  return write_run(tmp_path_factory.mktemp("run") / "lut",
                   ["--config.hw.accelerator=edge_tpu_like", "--config.hw.objective=edp",
                    "--config.retrain.steps=1", "--config.evaluate.batch_size=64"], seed=1)


@pytest.fixture
def copy_run(tmp_path):
  """``copy_run(src)``: a private copy of a shared run dir."""
  def copy(src: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst
  return copy
