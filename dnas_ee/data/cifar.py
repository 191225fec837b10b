"""CIFAR-10 and CIFAR-100 from the official "python version" files.

Reads ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` in one streaming
pass (no extraction, nothing cached on disk), or the extracted
``cifar-10-batches-py/`` / ``cifar-100-python/`` folders. Files are accepted by
format, not by MD5, so faithful rebuilds of the archives load too. The pickles
are read with an unpickler that only admits NumPy arrays, so a tampered archive
cannot run code.
"""
from __future__ import annotations

import dataclasses
import gzip
import pickle
import posixpath
import tarfile
from pathlib import Path
from typing import IO

import numpy as np

from dnas_ee.data import files
from dnas_ee.data.dataset import RawData

_PIXELS = 32 * 32 * 3
_VERSION = "python version"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclasses.dataclass(frozen=True)
class CifarVariant:
  """The layout of one CIFAR archive."""
  display: str
  archive: str
  folder: str
  train_files: tuple[str, ...]
  test_files: tuple[str, ...]
  label_key: str
  num_classes: int
  url: str

  @property
  def expected(self) -> str:
    return f"the archive {self.archive} or its extracted folder {self.folder}/"


CIFAR10 = CifarVariant(
    "CIFAR-10", "cifar-10-python.tar.gz", "cifar-10-batches-py",
    tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "labels", 10,
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
CIFAR100 = CifarVariant(
    "CIFAR-100", "cifar-100-python.tar.gz", "cifar-100-python", ("train",), ("test",),
    "fine_labels", 100, "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz")

# (module, name) pairs a CIFAR pickle may reference: NumPy array reconstruction
# (``numpy.core`` in the official py2 files, ``numpy._core`` when written by NumPy 2)
# and ``_codecs.encode``, which Python 3 uses for bytes under pickle protocol 2.
_ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


class _ArrayUnpickler(pickle.Unpickler):

  def find_class(self, module, name):
    if (module, name) not in _ALLOWED_GLOBALS:
      raise pickle.UnpicklingError(f"it references {module}.{name}, but a CIFAR batch holds only "
                                   "NumPy arrays, lists and strings")
    return super().find_class(module, name)


def _unpickle(stream: IO[bytes]) -> dict:
  batch = _ArrayUnpickler(stream, encoding="bytes").load()
  if not isinstance(batch, dict):
    raise ValueError(f"it holds a {type(batch).__name__}, expected a dict")
  return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}


def _decode_batch(batch: dict, variant: CifarVariant) -> tuple[np.ndarray, np.ndarray]:
  """Checks one batch dict and returns (uint8 [N, 32, 32, 3], int64 [N]); ValueError if bad."""
  for key in ("data", variant.label_key):
    if key not in batch:
      raise ValueError(f"key b'{key}' is missing (keys: {sorted(batch)})")
  data = batch["data"]
  if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
    raise ValueError(f"b'data' is {getattr(data, 'dtype', type(data).__name__)}, expected a uint8 "
                     "array")
  labels = np.asarray(batch[variant.label_key])
  n = labels.shape[0] if labels.ndim == 1 else -1
  if n < 0 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"b'{variant.label_key}' has shape {labels.shape} and dtype {labels.dtype}, "
                     "expected a list of ints")
  if data.size != n * _PIXELS:
    raise ValueError(f"b'data' has {data.size} values, expected {n} x {_PIXELS} for {n} labels")
  if n and (labels.min() < 0 or labels.max() >= variant.num_classes):
    raise ValueError(f"labels span [{labels.min()}, {labels.max()}], expected [0, "
                     f"{variant.num_classes - 1}]")
  # R, G and B planes of 32x32, row-major -> NHWC.
  images = data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)
  return images, labels.astype(np.int64)


def _read_archive(variant: CifarVariant, path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  wanted = {f"{variant.folder}/{name}": name for name in variant.train_files + variant.test_files}
  found, seen, current = {}, [], None
  try:
    with path.open("rb") as file:
      # gzip through GzipFile (not tarfile's own reader), so a truncated archive raises
      # EOFError instead of ending like a shorter, valid archive.
      stream = gzip.GzipFile(fileobj=file) if file.read(2) == _GZIP_MAGIC else file
      file.seek(0)
      with tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20) as tar:
        for member in tar:
          seen.append(member.name)
          name = wanted.get(posixpath.normpath(member.name))
          if name is not None and member.isfile():
            current = member.name
            found[name] = _decode_batch(_unpickle(tar.extractfile(member)), variant)
            current = None
      while stream.read(1 << 20):  # read to the end, so gzip checks its length and CRC
        pass
  except files.CORRUPT_ERRORS as e:
    where = (f"member {current}" if current else
             f"the archive (after member {seen[-1]})" if seen else "the archive")
    raise files.corrupt(f"{variant.display} archive", path, _VERSION,
                        f"{where} cannot be read ({type(e).__name__}: {e})", variant.url) from e
  for full, name in wanted.items():
    if name not in found:
      raise files.corrupt(f"{variant.display} archive", path, _VERSION,
                          f"member {full} is missing (it holds {len(seen)} members"
                          + (f", the last one {seen[-1]})" if seen else ")"), variant.url)
  return found


def _read_folder(variant: CifarVariant, folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  found = {}
  for name in variant.train_files + variant.test_files:
    path = folder / name
    if not path.is_file():
      raise files.corrupt(f"{variant.display} folder", folder, _VERSION,
                          f"file {name} is missing", variant.url)
    try:
      with path.open("rb") as f:
        found[name] = _decode_batch(_unpickle(f), variant)
    except files.CORRUPT_ERRORS as e:
      raise files.corrupt(f"{variant.display} file", path, _VERSION,
                          f"it cannot be read ({type(e).__name__}: {e})", variant.url) from e
  return found


def load_cifar(variant: CifarVariant, directory: str) -> RawData:
  """Loads a CIFAR variant from ``directory`` (the archive or the extracted folder).

  Args:
    variant: ``CIFAR10`` or ``CIFAR100``.
    directory: ``data.dir``; holds the archive or the extracted folder. It may
      also be the extracted folder itself.

  Returns:
    The official train and test sets as uint8 NHWC arrays.

  Raises:
    DataError: the directory, archive or folder is missing, or not in the
      official format.
  """
  root = files.data_dir(directory, variant.display, variant.expected, variant.url)
  folder, archive = root / variant.folder, root / variant.archive
  if root.name == variant.folder:
    folder = root
  if folder.is_dir():
    batches = _read_folder(variant, folder)
  elif archive.is_file():
    batches = _read_archive(variant, archive)
  else:
    raise files.missing(variant.display, root, variant.expected, variant.url)

  def join(names):
    images, labels = zip(*(batches[n] for n in names))
    return np.concatenate(images), np.concatenate(labels)

  train_images, train_labels = join(variant.train_files)
  test_images, test_labels = join(variant.test_files)
  return RawData(train_images, train_labels, test_images, test_labels, variant.num_classes, 255.0)
