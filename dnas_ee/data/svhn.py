"""SVHN (cropped digits, format 2) from the official ``train_32x32.mat`` / ``test_32x32.mat``.

The files are MATLAB v5: ``X`` is uint8 [32, 32, 3, N] and ``y`` is [N, 1] with
labels 1..10, where 10 stands for the digit 0. ``extra_32x32.mat`` is not used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from dnas_ee.data import files
from dnas_ee.data.dataset import RawData

URL = "http://ufldl.stanford.edu/housenumbers/"
TRAIN_FILE = "train_32x32.mat"
TEST_FILE = "test_32x32.mat"
_VERSION = "MATLAB v5 file of 32x32 cropped digits (format 2)"


def _decode(mat: dict) -> tuple[np.ndarray, np.ndarray]:
  """Checks a loaded .mat dict; returns (uint8 [N, 32, 32, 3], int64 [N]) or raises ValueError."""
  for key in ("X", "y"):
    if key not in mat:
      keys = sorted(k for k in mat if not k.startswith("__"))
      raise ValueError(f"variable '{key}' is missing (variables: {keys})")
  x, y = mat["X"], np.asarray(mat["y"])
  if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
    raise ValueError(f"'X' is {x.dtype} {x.shape}, expected uint8 (32, 32, 3, N)")
  n = x.shape[3]
  if y.size != n or not np.issubdtype(y.dtype, np.number):
    raise ValueError(f"'y' is {y.dtype} {y.shape}, expected ({n}, 1) labels for {n} images")
  y = y.reshape(n)
  if n and (y.min() < 0 or y.max() > 10 or np.any(y != np.round(y))):
    raise ValueError(f"'y' spans [{y.min()}, {y.max()}], expected integer labels in 1..10")
  labels = y.astype(np.int64) % 10  # 10 is the digit 0
  return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), labels


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
  try:
    return _decode(scipy.io.loadmat(path))
  except files.CORRUPT_ERRORS + (scipy.io.matlab.MatReadError,) as e:
    raise files.corrupt("SVHN file", path, _VERSION, f"it cannot be read ({type(e).__name__}: "
                        f"{e})", URL + path.name) from e


def load_svhn(directory: str) -> RawData:
  """Loads SVHN's official train and test sets from ``directory``.

  Raises:
    DataError: the directory or a file is missing, or a file is not the
      official MATLAB v5 format.
  """
  expected = f"{TRAIN_FILE} and {TEST_FILE}"
  root = files.data_dir(directory, "SVHN", expected, URL)
  for name in (TRAIN_FILE, TEST_FILE):
    if not (root / name).is_file():
      raise files.missing(f"SVHN file {name}", root, expected, URL + name)
  train_images, train_labels = _read(root / TRAIN_FILE)
  test_images, test_labels = _read(root / TEST_FILE)
  return RawData(train_images, train_labels, test_images, test_labels, 10, 255.0)
