"""Data containers: host-side splits, the dataset, and the raw arrays a source returns.

Everything here is NumPy on the host; batches move to the device one step at a
time (``dnas_ee.data.batching``), and augmentation runs there
(``dnas_ee.data.augment``).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from dnas_ee.errors import ConfigError


class DataError(ValueError):
  """A data set that is missing, unreadable, or not in the expected format."""


class DataSpecError(DataError, ConfigError):
  """A data spec (``config.data``) with a missing or invalid field."""


@dataclasses.dataclass(frozen=True)
class Split:
  """One split on the host.

  Attributes:
    images: float32 [N, H, W, C], normalized with the train split's per-channel
      mean and standard deviation.
    labels: int32 [N].
  """
  images: np.ndarray
  labels: np.ndarray

  def __post_init__(self):
    if self.images.ndim != 4:
      raise ValueError(f"Split.images must be NHWC (4-D), got shape {self.images.shape}")
    if self.labels.shape != (self.images.shape[0],):
      raise ValueError(f"Split.labels must have shape [{self.images.shape[0]}] to match the "
                       f"images, got {self.labels.shape}")

  def __len__(self) -> int:
    return int(self.labels.shape[0])


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A data set split four ways.

  Attributes:
    name: the ``data.name`` it was loaded from, e.g. ``"cifar10"`` or ``"tfds:mnist"``.
    train: the weights train on this.
    val: the architecture parameters train on this (the DARTS validation split).
    calib: exit-threshold calibration; never trained on.
    test: the official test set (for ``digits``, a seeded carve-out).
    num_classes: number of classes; labels are in ``[0, num_classes)``.
    image_shape: ``(H, W, C)``.
    mean: per-channel mean of the train split, in [0, 1] pixel units, that was subtracted.
    std: per-channel standard deviation of the train split, in [0, 1] units, that was divided by.
  """
  name: str
  train: Split
  val: Split
  calib: Split
  test: Split
  num_classes: int
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...] = ()
  std: tuple[float, ...] = ()


@dataclasses.dataclass(frozen=True)
class RawData:
  """What a source returns before splitting and normalization.

  Attributes:
    images: the official train set (or the whole set when there is no official
      split), NHWC, usually uint8.
    labels: integer labels [N] in ``[0, num_classes)``.
    test_images: the official test set, or None when the source has none.
    test_labels: its labels, or None.
    num_classes: number of classes.
    scale: the pixel value that maps to 1.0 (255 for uint8 images, 16 for digits).
  """
  images: np.ndarray
  labels: np.ndarray
  test_images: np.ndarray | None
  test_labels: np.ndarray | None
  num_classes: int
  scale: float
