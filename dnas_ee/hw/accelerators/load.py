"""Accelerator description files: where they live, reading them strictly, loading them.

The shipped descriptions are ``hwmodels/accelerators/<name>.yaml``
(``hwmodels_dir()``); a path to any ``.yaml`` file works too. The YAML is read
refusing duplicated keys (PyYAML keeps the last one silently), then validated by
``dnas_ee.hw.accelerators.schema``.

Example:
  >>> acc = load_accelerator("edge_tpu_like")
  >>> acc.clock_hz, acc.array_size
  (500000000.0, 1024)
"""
from __future__ import annotations

import importlib.resources
import os
from pathlib import Path
from typing import Any

import yaml

from dnas_ee.hw.accelerators.description import Accelerator, AcceleratorError
from dnas_ee.hw.accelerators.schema import parse_accelerator

HWMODELS_ENV = "DNAS_EE_HWMODELS"


# --------------------------------------------------------------------------- YAML loading


class _StrictLoader(yaml.SafeLoader):
  """SafeLoader that refuses duplicated mapping keys (PyYAML keeps the last one silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
  loader.flatten_mapping(node)
  seen: dict[Any, int] = {}
  for key_node, _ in node.value:
    key = loader.construct_object(key_node, deep=deep)
    if not isinstance(key, (str, int, float, bool)) or key is None:
      continue  # unhashable keys are reported by construct_mapping itself
    if key in seen:
      raise _DuplicateKey(key, seen[key], key_node.start_mark.line + 1)
    seen[key] = key_node.start_mark.line + 1
  return loader.construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):

  def __init__(self, key, first_line, line):
    super().__init__(key)
    self.key, self.first_line, self.line = key, first_line, line


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_strict_yaml(path: Path) -> Any:
  """Parses YAML refusing duplicated keys; raises ``AcceleratorError`` naming the problem."""
  try:
    text = path.read_text(encoding="utf-8")
  except OSError as err:
    raise AcceleratorError(path, "", f"cannot read the file ({err.strerror})",
                           "check the path, or give a shipped name (see list_accelerators())")
  try:
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
  except _DuplicateKey as dup:
    raise AcceleratorError(path, str(dup.key),
                           f"duplicated key (lines {dup.first_line} and {dup.line}); YAML would "
                           "silently keep the last one", "keep exactly one of them")
  except yaml.YAMLError as err:
    raise AcceleratorError(path, "", f"not valid YAML ({str(err).splitlines()[0]})",
                           "write the description as a YAML mapping like the shipped files "
                           "in hwmodels/accelerators/")


# --------------------------------------------------------------------------- files


def hwmodels_dir() -> Path:
  """The ``hwmodels/`` folder: ``$DNAS_EE_HWMODELS`` if set, else the installed package
  data (``dnas_ee/hwmodels`` in a wheel: ``setup.py`` maps the repository's ``hwmodels/``
  there), else the source checkout's ``hwmodels/`` (an editable install)."""
  env = os.environ.get(HWMODELS_ENV)
  if env:
    return Path(env).expanduser().resolve()
  shipped = importlib.resources.files("dnas_ee") / "hwmodels"
  if shipped.is_dir():
    return Path(str(shipped))
  return Path(__file__).resolve().parents[3] / "hwmodels"  # <repo>/dnas_ee/hw/accelerators/


def list_accelerators() -> list[str]:
  """Names of the accelerator descriptions shipped in ``hwmodels/accelerators/``."""
  folder = hwmodels_dir() / "accelerators"
  return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def accelerator_path(name_or_path: str | os.PathLike) -> Path:
  """A shipped name (``edge_tpu_like``) or a path to a ``.yaml`` file -> the file's path."""
  text = os.fspath(name_or_path)
  if isinstance(name_or_path, os.PathLike) or text.endswith((".yaml", ".yml")) or os.sep in text:
    return Path(text).expanduser()
  path = hwmodels_dir() / "accelerators" / f"{text}.yaml"
  if not path.is_file():
    raise AcceleratorError(path, "", f"no accelerator named {text!r}",
                           f"use one of {list_accelerators()} or give a path to a .yaml file "
                           f"(shipped descriptions are read from {hwmodels_dir()}, "
                           f"overridable with ${HWMODELS_ENV})")
  return path


def load_accelerator(name_or_path: str | os.PathLike) -> Accelerator:
  """Reads and validates an accelerator description.

  Args:
    name_or_path: a shipped name (see ``list_accelerators()``) or a YAML file path.

  Returns:
    The frozen ``Accelerator``, all quantities in SI units.

  Raises:
    AcceleratorError: anything wrong with the file, naming the key and the fix.
  """
  path = accelerator_path(name_or_path)
  raw = read_strict_yaml(path)
  return parse_accelerator(raw, path)
