"""``load_dataset``: a ``data`` config in, four normalized host splits out.

The official train set is split, stratified by class and seeded, into train
(weights), val (architecture parameters, as in DARTS) and calib (exit-threshold
calibration); the official test set is the test split. ``digits`` has no
official split, so its test split is carved out of the whole set first.
Normalization statistics come from the (possibly limited) train split alone.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import numpy as np

from dnas_ee.data import cifar, splits, svhn, tfds_source
from dnas_ee.data.dataset import Dataset, DataSpecError, RawData, Split

NAMES = ("digits", "cifar10", "cifar100", "svhn")
TFDS_PREFIX = "tfds:"
_REQUIRED = object()
_KIND_NAMES = {int: "an int", float: "a float", str: "a string"}

# Entropy tags, so the split, the train subset and the test subset use independent streams.
_SPLIT, _LIMIT_TRAIN, _LIMIT_TEST = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """The fields of a ``data`` config that loading reads, validated."""
  name: str
  dir: str
  seed: int
  val_fraction: float
  calib_fraction: float
  test_fraction: float
  limit_train: int
  limit_test: int


def _field(cfg: Any, key: str, kind: type, default: Any = _REQUIRED) -> Any:
  value = cfg.get(key, default) if isinstance(cfg, dict) else getattr(cfg, key, default)
  if value is _REQUIRED:
    raise DataSpecError(f"the data config has no field '{key}' (set data.{key})")
  if kind is float and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  if not isinstance(value, kind) or isinstance(value, bool):
    raise DataSpecError(f"data.{key}={value!r} must be {_KIND_NAMES[kind]}")
  return value


def parse_data_config(data_cfg: Any) -> DataSpec:
  """Reads and validates a ``data`` config (a ``ConfigDict``, dict or any attribute object)."""
  spec = DataSpec(
      name=_field(data_cfg, "name", str).strip(), dir=_field(data_cfg, "dir", str, ""),
      seed=_field(data_cfg, "seed", int), val_fraction=_field(data_cfg, "val_fraction", float),
      calib_fraction=_field(data_cfg, "calib_fraction", float),
      test_fraction=_field(data_cfg, "test_fraction", float, 0.0),
      limit_train=_field(data_cfg, "limit_train", int, 0),
      limit_test=_field(data_cfg, "limit_test", int, 0))
  if spec.name not in NAMES and not (spec.name.startswith(TFDS_PREFIX)
                                     and spec.name[len(TFDS_PREFIX):].strip()):
    near = difflib.get_close_matches(spec.name.lower(), NAMES, n=1, cutoff=0.6)
    hint = f"; did you mean '{near[0]}'?" if near else ""
    raise DataSpecError(f"unknown data.name '{spec.name}': expected one of {', '.join(NAMES)}, or "
                      f"'{TFDS_PREFIX}<name>' for a prepared tfds data set (e.g. tfds:mnist){hint}")
  if spec.seed < 0:
    raise DataSpecError(f"data.seed={spec.seed} must be >= 0")
  for key in ("limit_train", "limit_test"):
    if getattr(spec, key) < 0:
      raise DataSpecError(f"data.{key}={getattr(spec, key)} must be >= 0 (0 keeps everything)")
  if spec.name == "digits" and not spec.test_fraction > 0:
    raise DataSpecError(f"data.test_fraction={spec.test_fraction}: digits has no official test set, "
                      "so test_fraction must be in (0, 1)")
  return spec


def load_digits() -> RawData:
  """scikit-learn's 8x8 digits (1,797 images, values 0..16); no official test split."""
  import sklearn.datasets  # Lazily: only digits needs scikit-learn.

  digits = sklearn.datasets.load_digits()
  images = digits.images.astype(np.uint8)[..., None]
  return RawData(images, digits.target.astype(np.int64), None, None, 10, 16.0)


def load_raw(spec: DataSpec) -> RawData:
  """The source's arrays before splitting; raises ``DataError`` when they cannot be read."""
  if spec.name == "digits":
    return load_digits()
  if spec.name == "cifar10":
    return cifar.load_cifar(cifar.CIFAR10, spec.dir)
  if spec.name == "cifar100":
    return cifar.load_cifar(cifar.CIFAR100, spec.dir)
  if spec.name == "svhn":
    return svhn.load_svhn(spec.dir)
  return tfds_source.load_tfds(spec.name[len(TFDS_PREFIX):].strip(), spec.dir)


def split_indices(raw: RawData, spec: DataSpec) -> dict[str, np.ndarray]:
  """Sorted indices of each split: train/val/calib into ``raw.images``, test into the test set.

  For ``digits`` (no official test set) all four index ``raw.images``.
  """
  seed = (spec.seed, _SPLIT)
  try:
    if raw.test_images is None:
      test, val, calib, train = splits.carve(
          raw.labels, (spec.test_fraction, spec.val_fraction, spec.calib_fraction), seed,
          ("data.test_fraction", "data.val_fraction", "data.calib_fraction"))
      test_labels = raw.labels
    else:
      val, calib, train = splits.carve(raw.labels, (spec.val_fraction, spec.calib_fraction), seed,
                                       ("data.val_fraction", "data.calib_fraction"))
      test_labels = raw.test_labels
      test = np.arange(test_labels.shape[0])
  except ValueError as e:
    raise DataSpecError(f"{spec.name}: {e}") from e
  train = splits.limit(train, raw.labels, spec.limit_train, (spec.seed, _LIMIT_TRAIN))
  test = splits.limit(test, test_labels, spec.limit_test, (spec.seed, _LIMIT_TEST))
  return dict(train=train, val=val, calib=calib, test=test)


def load_dataset(data_cfg: Any) -> Dataset:
  """Loads, splits and normalizes a data set as described by a ``data`` config.

  Args:
    data_cfg: ``config.data``: ``name`` (``digits``, ``cifar10``, ``cifar100``,
      ``svhn`` or ``tfds:<name>``), ``dir``, ``seed``, ``val_fraction``,
      ``calib_fraction``, ``test_fraction`` (digits only), ``limit_train`` and
      ``limit_test`` (0 keeps all; otherwise a stratified, seeded subset).

  Returns:
    The four splits as float32 NHWC arrays normalized with the train split's
    per-channel statistics, and int32 labels. The same config gives identical
    arrays.

  Raises:
    DataError: the data cannot be found or read.
    DataSpecError: a field of the data spec is missing or invalid (a ``ConfigError``).

  Example:
    >>> from dnas_ee.config import base_config
    >>> data = load_dataset(base_config().data)
    >>> data.image_shape, data.num_classes, len(data.train) + len(data.val) + len(data.calib)
    ((8, 8, 1), 10, 1348)
  """
  spec = parse_data_config(data_cfg)
  raw = load_raw(spec)
  index = split_indices(raw, spec)
  test_images = raw.images if raw.test_images is None else raw.test_images
  test_labels = raw.labels if raw.test_labels is None else raw.test_labels
  mean, std = splits.channel_stats(raw.images[index["train"]])

  def make(images: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> Split:
    return Split(splits.normalize(images[idx], mean, std), labels[idx].astype(np.int32))

  return Dataset(
      name=spec.name,
      train=make(raw.images, raw.labels, index["train"]),
      val=make(raw.images, raw.labels, index["val"]),
      calib=make(raw.images, raw.labels, index["calib"]),
      test=make(test_images, test_labels, index["test"]),
      num_classes=int(raw.num_classes),
      image_shape=tuple(int(d) for d in raw.images.shape[1:]),
      mean=tuple(float(m) for m in mean / raw.scale),
      std=tuple(float(s) for s in std / raw.scale))
