"""Finding local data files, and the errors that say where to put them.

Every failure to find or read a data file becomes one ``DataError`` that names
the file, what was expected, where it looked, and how to fix it (download URL
and the ``--config.data.dir`` flag); never a raw traceback from a decoder.
"""
from __future__ import annotations

import pickle
import tarfile
import zlib
from pathlib import Path

from dnas_ee.data.dataset import DataError

DIR_FLAG = "--config.data.dir"

# What decoders raise on truncated or garbled input: gzip/tar (ReadError, EOFError,
# zlib.error, BadGzipFile is an OSError), pickle (UnpicklingError and whatever a
# garbled opcode stream trips over), MATLAB readers (ValueError, TypeError, ...).
CORRUPT_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError, pickle.UnpicklingError,
                  ValueError, TypeError, KeyError, IndexError, AttributeError, ImportError,
                  NotImplementedError)


def data_dir(directory: str, dataset: str, expected: str, url: str) -> Path:
  """The ``data.dir`` directory, checked to exist.

  Args:
    directory: ``data.dir`` from the config.
    dataset: display name, e.g. ``"CIFAR-10"``.
    expected: what should be inside, for messages, e.g. ``"the archive a.tar.gz or its
      extracted folder a/"``.
    url: where to download the data.

  Returns:
    The directory, with ``~`` expanded.

  Raises:
    DataError: ``directory`` is empty or does not exist.
  """
  if not str(directory).strip():
    raise DataError(f"{dataset} needs data.dir: set {DIR_FLAG}=/path/to/dir, the directory that "
                    f"holds {expected} (download from {url})")
  path = Path(directory).expanduser()
  if not path.is_dir():
    raise DataError(f"{dataset}: data.dir {path} does not exist or is not a directory; it should "
                    f"hold {expected}. Download from {url} into it, or point {DIR_FLAG} at the "
                    f"directory that holds them")
  return path


def missing(dataset: str, directory: Path, expected: str, url: str) -> DataError:
  """The error for a directory that holds none of the expected files."""
  return DataError(f"{dataset} not found in {directory}: expected {expected} there. "
                   f"Download {url} into {directory}, or point {DIR_FLAG} at the directory that "
                   f"holds it")


def corrupt(what: str, path: Path, version: str, problem: str, url: str) -> DataError:
  """The error for a file that exists but cannot be read as the expected format.

  Args:
    what: e.g. ``"CIFAR-10 archive"``.
    path: the file or folder.
    version: the official format, e.g. ``"python version"``.
    problem: what was expected and where, e.g. ``"member x/data_batch_3 is missing"``.
    url: the official download.
  """
  return DataError(f"{what} {path} is corrupt or not the official {version}: {problem}. "
                   f"Download {url} into {path.parent} (or set {DIR_FLAG})")
