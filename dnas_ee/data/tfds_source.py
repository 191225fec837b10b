"""Data sets a user has already prepared with TensorFlow Datasets (``tfds:<name>``).

Read through ``tfds.data_source`` (ArrayRecord random access; TensorFlow is not
needed). Nothing is ever downloaded here: machines that run searches often have
no network, so an unprepared data set is an error that says how to prepare it.
All examples of the ``train`` and ``test`` splits are read into NumPy, which
suits the small image data sets this library targets.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dnas_ee.data.dataset import DataError, RawData
from dnas_ee.data.files import DIR_FLAG

_SPLITS = ("train", "test")
_CHUNK = 4096


def _builder(tfds, name: str, data_dir: str | None):
  try:
    return tfds.builder(name, data_dir=data_dir)
  except ValueError as e:  # DatasetNotFoundError, or a malformed name
    where = data_dir or "the default data_dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    raise DataError(f"tfds data set '{name}' is neither registered in tensorflow-datasets nor "
                    f"prepared in {where} ({type(e).__name__}: {str(e).splitlines()[0]}). Check "
                    f"data.name (tfds:<name>, e.g. tfds:mnist) and {DIR_FLAG}") from e


def _read_split(source, name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  n = len(source)
  images, labels = [], []
  for start in range(0, n, _CHUNK):
    for example in source.__getitems__(list(range(start, min(n, start + _CHUNK)))):
      images.append(np.asarray(example["image"]))
      labels.append(example["label"])
  if not images:
    raise DataError(f"tfds data set '{name}': split '{split}' is empty")
  shapes = {im.shape for im in images}
  if len(shapes) != 1:
    raise DataError(f"tfds data set '{name}': split '{split}' has images of {len(shapes)} "
                    f"different shapes (e.g. {sorted(shapes)[:3]}); only fixed-size images are "
                    "supported")
  stacked = np.stack(images)
  if stacked.ndim == 3:  # grayscale stored as [H, W]
    stacked = stacked[..., None]
  if stacked.ndim != 4:
    raise DataError(f"tfds data set '{name}': images have shape {images[0].shape}, expected "
                    "[H, W, C] or [H, W]")
  return stacked, np.asarray(labels, np.int64)


def _scale(images: np.ndarray, name: str) -> float:
  if images.dtype == np.uint8:
    return 255.0
  if np.issubdtype(images.dtype, np.floating):
    return 1.0
  raise DataError(f"tfds data set '{name}': images are {images.dtype}, expected uint8 or float")


def load_tfds(name: str, directory: str) -> RawData:
  """Loads the ``train`` and ``test`` splits of a prepared tfds data set.

  Args:
    name: the tfds name, optionally with config and version (``mnist``,
      ``mnist:3.0.1``).
    directory: the tfds ``data_dir``; empty for tfds's default.

  Returns:
    The train and test sets; ``num_classes`` from the ``label`` feature.

  Raises:
    DataError: the data set is unknown or not prepared (it is never downloaded),
      was prepared in a format without random access, or lacks the ``image`` /
      ``label`` features or the ``train`` / ``test`` splits.
  """
  import tensorflow_datasets as tfds  # Lazily: a slow import that only tfds:<name> needs.

  data_dir = str(Path(directory).expanduser()) if str(directory).strip() else None
  builder = _builder(tfds, name, data_dir)
  if not builder.is_prepared():
    raise DataError(
        f"tfds data set '{name}' is not prepared: looked in {builder.data_dir}. Prepare it first, "
        f"on a machine with network access: `tfds build {name} --file_format=array_record "
        f"--data_dir=DIR`, copy DIR here and set {DIR_FLAG}=DIR")
  features = builder.info.features
  missing = [k for k in ("image", "label") if k not in features]
  if missing:
    raise DataError(f"tfds data set '{name}' lacks the feature(s) {missing}; it has "
                    f"{sorted(features.keys())}, expected 'image' and 'label'")
  num_classes = getattr(features["label"], "num_classes", None)
  if not num_classes:
    raise DataError(f"tfds data set '{name}': feature 'label' is {type(features['label']).__name__}"
                    ", expected a ClassLabel (classification)")
  absent = [s for s in _SPLITS if s not in builder.info.splits]
  if absent:
    raise DataError(f"tfds data set '{name}' has no split(s) {absent} (it has "
                    f"{sorted(builder.info.splits.keys())}); dnas-ee needs 'train' and 'test'")
  try:
    sources = tfds.data_source(name, split=list(_SPLITS), data_dir=data_dir, download=False)
  except NotImplementedError as e:  # prepared as TFRecord: no random access
    raise DataError(f"tfds data set '{name}' in {builder.data_dir} was prepared without random "
                    f"access ({str(e).splitlines()[0]}). Rebuild it with `tfds build {name} "
                    "--file_format=array_record`") from e
  (train_x, train_y), (test_x, test_y) = (_read_split(src, name, s) for src, s in
                                          zip(sources, _SPLITS))
  for split, labels in (("train", train_y), ("test", test_y)):
    if labels.min() < 0 or labels.max() >= num_classes:
      raise DataError(f"tfds data set '{name}': {split} labels span [{labels.min()}, "
                      f"{labels.max()}], expected [0, {num_classes - 1}]")
  if train_x.shape[1:] != test_x.shape[1:] or train_x.dtype != test_x.dtype:
    raise DataError(f"tfds data set '{name}': train images are {train_x.dtype} "
                    f"{train_x.shape[1:]} but test images are {test_x.dtype} {test_x.shape[1:]}")
  return RawData(train_x, train_y, test_x, test_y, int(num_classes), _scale(train_x, name))
