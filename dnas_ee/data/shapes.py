"""Image shape and class count of a data set, without loading it.

The search space (hence a LUT) depends only on the input shape and the number of
classes; ``dnas-ee lut build`` must not need the data itself (it may run on a
machine that has none). Known names answer from a table; ``tfds:<name>`` reads
the builder's metadata (no download, no example read).

Example:
  >>> dataset_shape({"name": "cifar10"})
  ((32, 32, 3), 10)
"""
from __future__ import annotations

from typing import Any

from dnas_ee.config import ConfigError
from dnas_ee.data.dataset import DataError

TFDS_PREFIX = "tfds:"
# (H, W, C), classes: the arrays that ``dnas_ee.data.load_dataset`` returns.
KNOWN_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "digits": ((8, 8, 1), 10),
    "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100),
    "svhn": ((32, 32, 3), 10),
}


def _field(data_cfg: Any, key: str, default: Any = None) -> Any:
  if isinstance(data_cfg, dict):
    return data_cfg.get(key, default)
  return getattr(data_cfg, key, default)


def dataset_shape(data_cfg: Any) -> tuple[tuple[int, int, int], int]:
  """``(image_shape, num_classes)`` of the data set a ``data`` config names.

  Args:
    data_cfg: ``config.data`` (a ``ConfigDict``, a dict or any object with
      ``name`` and, for tfds, ``dir``).

  Returns:
    ``((H, W, C), num_classes)``, exactly what ``load_dataset`` would report.

  Raises:
    ConfigError: the name is neither known nor ``tfds:<name>``.
    DataError: a tfds data set is unknown, has no fixed image shape or no
      ``ClassLabel`` label.
  """
  name = _field(data_cfg, "name")
  if not isinstance(name, str) or not name.strip():
    raise ConfigError(f"data.name={name!r} must name a data set: one of "
                      f"{', '.join(KNOWN_SHAPES)} or {TFDS_PREFIX}<name>")
  name = name.strip()
  if name in KNOWN_SHAPES:
    return KNOWN_SHAPES[name]
  if name.startswith(TFDS_PREFIX) and name[len(TFDS_PREFIX):].strip():
    return _tfds_shape(name[len(TFDS_PREFIX):].strip(), str(_field(data_cfg, "dir", "") or ""))
  raise ConfigError(f"unknown data.name {name!r}: expected one of {', '.join(KNOWN_SHAPES)}, or "
                    f"'{TFDS_PREFIX}<name>' for a prepared tfds data set (e.g. tfds:mnist)")


def _tfds_shape(name: str, directory: str) -> tuple[tuple[int, int, int], int]:
  """Shape and classes from a tfds builder's info (nothing downloaded or read)."""
  from pathlib import Path

  import tensorflow_datasets as tfds  # Lazily: a slow import that only tfds:<name> needs.

  from dnas_ee.data.tfds_source import _builder

  data_dir = str(Path(directory).expanduser()) if directory.strip() else None
  features = _builder(tfds, name, data_dir).info.features
  missing = [k for k in ("image", "label") if k not in features]
  if missing:
    raise DataError(f"tfds data set '{name}' lacks the feature(s) {missing}; it has "
                    f"{sorted(features.keys())}, expected 'image' and 'label'")
  shape = tuple(features["image"].shape)
  if len(shape) == 2:
    shape = shape + (1,)
  if len(shape) != 3 or any(d is None for d in shape):
    raise DataError(f"tfds data set '{name}': images have shape {features['image'].shape}; dnas-ee "
                    "needs a fixed [H, W, C] (or [H, W]) shape")
  num_classes = getattr(features["label"], "num_classes", None)
  if not num_classes:
    raise DataError(f"tfds data set '{name}': feature 'label' is {type(features['label']).__name__}"
                    ", expected a ClassLabel (classification)")
  return tuple(int(d) for d in shape), int(num_classes)
