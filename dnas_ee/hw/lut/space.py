"""The accelerator LUT of a search space, as a cost source of the cost layer.

One LUT file per accelerator and cost model holds the rows of every search space
built into it so far (``dnas-ee lut build`` merges new rows in)::

    hwmodels/luts/<accelerator>.json            ZigZag (the reference model; shipped)
    hwmodels/luts/<accelerator>.<model>.json    any other model, e.g. .analytic.json

``config.hw.lut`` (a path) overrides the default file. Loading checks the file
(``load_lut``), that it was built from the current accelerator description
(hash), that it holds one cost model (ZigZag files may hold ``analytic-1`` rows
for pooling/add/gap, nothing else), and that it covers every op the search space
can produce; each failure is a ``LutError`` naming the command that fixes it.

Example:
  >>> from dnas_ee.space.backbones import build_backbone
  >>> from dnas_ee.space.space import make_search_space
  >>> backbone = build_backbone("resnet_cifar", (8, 8, 1), 10, stage_widths=(8, 16, 16),
  ...                           blocks_per_stage=(1, 1, 1), stem_width=8)
  >>> space = make_search_space(backbone, exit_positions=(1,), branch_ops=("conv3_s1_x1",),
  ...                           branch_depth=1, branch_resolutions=(4,), bits=(8,))
  >>> lut = build_lut(required_signatures(space), "edge_tpu_like", model="analytic", workers=1,
  ...                 progress=False)
  >>> source = LutCostSource(lut)
  >>> source.metrics, source.model
  (('latency_s', 'energy_j'), 'analytic-2')
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from dnas_ee.cost.tables import build_cost_tables
from dnas_ee.hw.accelerator import (Accelerator, hwmodels_dir, list_accelerators,
                                    load_accelerator)
from dnas_ee.hw.analytic import MODEL as ANALYTIC_MODEL
from dnas_ee.hw.lut import Lut, LutError, load_lut
from dnas_ee.hw.lut_build import build_lut, resolve_model
from dnas_ee.space.signature import WEIGHTED_OPS, OpSignature

LUT_METRICS = ("latency_s", "energy_j")
# The model of the shipped LUTs, whose files carry no model suffix.
DEFAULT_MODEL = "zigzag"


def accelerator_name(accelerator: Accelerator | str | os.PathLike) -> str:
  """The name of a description given as an ``Accelerator``, a shipped name or a YAML path."""
  if isinstance(accelerator, Accelerator):
    return accelerator.name
  text = os.fspath(accelerator)
  if isinstance(accelerator, os.PathLike) or text.endswith((".yaml", ".yml")) or os.sep in text:
    return Path(text).stem
  return text


def default_lut_path(accelerator: Accelerator | str | os.PathLike,
                     model: str = DEFAULT_MODEL) -> Path:
  """Where the LUT of ``accelerator`` built with cost model ``model`` lives by default.

  Args:
    accelerator: a description, a shipped name or a YAML path (its stem names the file).
    model: ``'zigzag'`` (the shipped LUTs: ``<name>.json``), or another model name
      (``'analytic'``: ``<name>.analytic.json``).

  Returns:
    ``hwmodels/luts/<name>[.<model>].json`` (``hwmodels/`` as ``hwmodels_dir()``).
  """
  suffix = "" if model == DEFAULT_MODEL else f".{model}"
  return hwmodels_dir() / "luts" / f"{accelerator_name(accelerator)}{suffix}.json"


def build_command(accelerator: str, *, output: str | os.PathLike | None = None,
                  model: str | None = None) -> str:
  """The ``dnas-ee lut build`` command line that (re)builds a LUT, for error messages."""
  cmd = f"dnas-ee lut build --config <the config file of the run> --accelerator {accelerator}"
  if model and model != "auto":
    cmd += f" --model {model}"
  if output is not None and Path(output).resolve() != default_lut_path(
      accelerator, model if model not in (None, "auto") else DEFAULT_MODEL).resolve():
    cmd += f" --output {output}"
  return cmd + " [plus the run's --config.* overrides]"


def _zigzag_note(accelerator: str, path: Path) -> str:
  """How to do without ZigZag, when the LUT to build is a ZigZag one and ZigZag is missing."""
  from dnas_ee.hw.zigzag_model import INSTALL_HINT, zigzag_available
  if zigzag_available() or path.resolve() != default_lut_path(accelerator).resolve():
    return ""
  analytic = default_lut_path(accelerator, "analytic")
  return (f" (this needs ZigZag: {INSTALL_HINT}; without it, build the analytic LUT with "
          f"`{build_command(accelerator, model='analytic')}` and add "
          f"--config.hw.lut={analytic} to the run)")


class _Recorder:
  """A cost source that only records which ops it is asked for."""
  metrics = ("recorded",)

  def __init__(self):
    self.seen: set[OpSignature] = set()

  def __call__(self, sig: OpSignature) -> np.ndarray:
    self.seen.add(sig)
    return np.zeros(1)


def required_signatures(space) -> list[OpSignature]:
  """Every op a LUT must hold for ``space``, sorted.

  ``space.all_signatures()`` (the ops an architecture of the space can contain)
  plus whatever else ``build_cost_tables`` asks the cost source for: it also fills
  table entries that no architecture reaches (a first branch slot on an input in
  a wider width state), which are multiplied by zero probability but must still
  be answered, never with a made-up zero. Found by running ``build_cost_tables``
  with a recording source, so it follows the tables whatever they ask.
  """
  recorder = _Recorder()
  build_cost_tables(space, recorder)
  return sorted(recorder.seen | set(space.all_signatures()))


def check_row_models(lut: Lut, *, build_hint: str) -> None:
  """``LutError`` if the rows of ``lut`` come from another cost model than the file says.

  A ZigZag LUT may hold ``analytic-1`` rows for pooling, add and gap (ZigZag does
  not evaluate them, see ``zigzag_model``); every other row must carry the file's model.
  """
  expected = f"{lut.model_name}-{lut.model_version}"
  if lut.model_name == "measured":
    expected = "measured"
  for key, cost in lut.rows.items():
    if cost.model == expected:
      continue
    op = key.split("_", 1)[0]
    if lut.model_name == "zigzag" and cost.model == ANALYTIC_MODEL and op not in WEIGHTED_OPS:
      continue
    raise LutError(f"{lut._where()} says its model is {expected}, but row {key} was produced by "
                   f"{cost.model}: one LUT file holds one cost model. Rebuild it with: "
                   f"{build_hint}")


class LutCostSource:
  """A ``CostSource`` (``dnas_ee.cost``) reading latency and energy from a LUT.

  Lookups are cached per signature (the cost tables ask for the same ops thousands
  of times). An op absent from the LUT raises ``LutError`` naming it.

  Attributes:
    metrics: ``('latency_s', 'energy_j')``: seconds and joules of one inference.
    lut: the loaded ``Lut``.
    path: its file (``None`` for an in-memory LUT).
  """
  metrics = LUT_METRICS

  def __init__(self, lut: Lut, signatures: Iterable[OpSignature] = ()):
    self.lut = lut
    self.path = Path(lut.path) if lut.path else None
    self._cache: dict[OpSignature, np.ndarray] = {}
    for sig in signatures:
      self(sig)

  @property
  def model(self) -> str:
    return f"{self.lut.model_name}-{self.lut.model_version}"

  def __call__(self, sig: OpSignature) -> np.ndarray:
    row = self._cache.get(sig)
    if row is None:
      cost = self.lut.lookup(sig)
      row = np.array([cost.latency_s, cost.energy_j], np.float64)
      row.flags.writeable = False
      self._cache[sig] = row
    return row

  def __repr__(self) -> str:
    return (f"LutCostSource({self.lut.accelerator!r}, {self.model}, {len(self.lut)} rows, "
            f"path={str(self.path) if self.path else None!r})")


def load_checked_lut(path: str | os.PathLike, acc: Accelerator,
                     signatures: Iterable[OpSignature] = (), *, build_hint: str) -> Lut:
  """Loads a LUT and checks it against ``acc`` and the ops a search space needs.

  Args:
    path: the LUT file.
    acc: the accelerator description it must come from (same name and hash).
    signatures: ops that must all be present.
    build_hint: the command that builds the LUT, quoted in every error.

  Raises:
    LutError: no such file, malformed, another accelerator, stale description,
      mixed cost models, or missing ops.
  """
  path = Path(path).expanduser()
  if not path.is_file():
    raise LutError(f"no LUT at {path} for accelerator {acc.name!r}: build it with: {build_hint}")
  lut = load_lut(path)
  if lut.accelerator != acc.name:
    raise LutError(f"LUT {path} was built for accelerator {lut.accelerator!r}, not {acc.name!r}: "
                   f"point --config.hw.lut at a LUT of {acc.name!r}, or build one with: "
                   f"{build_hint}")
  lut.check_accelerator(acc, build_hint=build_hint)
  check_row_models(lut, build_hint=build_hint)
  lut.require(signatures, build_hint=build_hint)
  return lut


def lut_cost_source(accelerator: str, lut_path: str | os.PathLike, space) -> LutCostSource:
  """Latency and energy of the search space's ops on ``accelerator``.

  Args:
    accelerator: a shipped name or a description's YAML path (a run's ``hw.accelerator``).
    lut_path: the LUT file (a run's ``hw.lut``); empty: ``default_lut_path(accelerator)``.
    space: the ``SearchSpace``; every op of ``required_signatures(space)`` must be in the LUT.

  Returns:
    A ``LutCostSource`` with metrics ``('latency_s', 'energy_j')``.

  Raises:
    LutError: the LUT is missing, stale, malformed or incomplete (the message names
      the ``dnas-ee lut build`` command that fixes it).
    AcceleratorError: the accelerator description cannot be read.
  """
  name = os.fspath(accelerator)
  if not name:
    raise LutError("config.hw.accelerator is empty, so there is no LUT to read latency and "
                   f"energy from: set --config.hw.accelerator to one of {list_accelerators()} "
                   "(or a description's .yaml path)")
  if is_measured_device(name):
    return LutCostSource(_load_measured(name, lut_path, space), required_signatures(space))
  acc = load_accelerator(name)
  path = Path(lut_path).expanduser() if lut_path else default_lut_path(acc)
  hint = build_command(name, output=path if lut_path else None) + _zigzag_note(name, path)
  signatures = required_signatures(space)
  lut = load_checked_lut(path, acc, signatures, build_hint=hint)
  return LutCostSource(lut, signatures)


def is_measured_device(accelerator) -> bool:
  """Whether ``accelerator`` names a JAX device measured by ``dnas-ee lut measure`` (``jax-*``)."""
  from dnas_ee.hw.lut_measure import DEVICE_PREFIX
  return isinstance(accelerator, str) and accelerator.startswith(DEVICE_PREFIX)


def _load_measured(name: str, lut_path, space) -> Lut:
  """A measured LUT of a JAX device: no description to check, the rest as usual."""
  hint = ("dnas-ee lut measure --config <the config file of the run> --output PATH, on the "
          f"device {name!r}")
  if not lut_path:
    raise LutError(f"accelerator {name!r} is a measured JAX device, which has no shipped LUT: "
                   f"give --config.hw.lut=PATH, measured with: {hint}")
  path = Path(lut_path).expanduser()
  if not path.is_file():
    raise LutError(f"no LUT at {path} for {name!r}: measure it with: {hint}")
  lut = load_lut(path)
  if lut.accelerator != name or lut.model_name != "measured":
    raise LutError(f"LUT {path} holds {lut.model_name} rows of {lut.accelerator!r}, not a "
                   f"measurement of {name!r}: measure it with: {hint}")
  check_row_models(lut, build_hint=hint)
  lut.require(required_signatures(space), build_hint=hint)
  return lut


# --------------------------------------------------------------------------- build


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpaceLutBuild:
  """What ``build_space_lut`` did.

  Attributes:
    lut: the rows of this search space (``build_stats``: evaluated vs reused).
    path: the file written (the union of its earlier rows and these).
    model: the cost model, e.g. ``zigzag-3.9.1-onchip-fixed``.
    file_rows: rows in the file after the build.
    spaces: search-space keys the file now covers (``SearchSpace.identity_key``).
    notes: things the caller should tell the user (a stale file rebuilt, a fallback).
  """
  lut: Lut
  path: Path
  model: str
  file_rows: int
  spaces: tuple[str, ...]
  notes: tuple[str, ...] = ()


def _auto_model(acc: Accelerator) -> str:
  from dnas_ee.hw.zigzag_model import zigzag_available
  return "zigzag" if zigzag_available() and acc.zigzag_hardware else "analytic"


def _read_existing(path: Path) -> Lut | None:
  if not path.exists():
    return None
  try:
    return load_lut(path)
  except LutError as err:
    raise LutError(f"{err} (this build would extend that file: delete it to rebuild from "
                   "scratch, or write elsewhere with --output PATH)") from None


def build_space_lut(space, accelerator: Accelerator | str | os.PathLike, *, model: str = "auto",
                    output: str | os.PathLike | None = None, workers: int | None = None,
                    progress: bool = True, mapping_search: bool = False,
                    residency: str = "onchip") -> SpaceLutBuild:
  """Builds (or extends) the LUT of ``accelerator`` with every op of ``space``
  (``required_signatures``).

  The file is its own cache: rows already there (same description hash and model)
  are reused, only new ops are evaluated, and the file is rewritten with the union,
  so one file serves every search space built into it. One file holds one cost
  model: extending a file with another model is refused.

  Args:
    space: a ``SearchSpace``.
    accelerator: a description, shipped name or YAML path.
    model: ``'zigzag'``, ``'analytic'`` or ``'auto'``: the model of the file at
      ``output`` when it exists, else ZigZag when installed (and the description
      names ZigZag files), else analytic.
    output: the LUT file; default ``default_lut_path(accelerator, model)``.
    workers: processes for the evaluations (``None``/``0``: automatic, see ``build_lut``).
    progress: progress bar and build messages on stderr.
    mapping_search: ZigZag only: search the mapping (1-3 s per op; model
      ``zigzag-<version>-search``) instead of the fixed one.
    residency: ZigZag only: ``'onchip'`` (default) or ``'dram'`` (see ``zigzag_model``).

  Raises:
    LutError: ``output`` holds another accelerator's LUT, another model's, or is malformed.
    ZigZagError: ZigZag was asked for but is not installed or failed.
  """
  acc = accelerator if isinstance(accelerator, Accelerator) else load_accelerator(accelerator)
  if model not in ("auto", "zigzag", "analytic"):
    raise ValueError(f"model={model!r}: use 'auto', 'zigzag' or 'analytic'")
  notes = []
  if output:
    path = Path(output).expanduser()
    existing = _read_existing(path)
    if model == "auto":
      usable = (existing is not None and existing.accelerator == acc.name
                and existing.accelerator_hash == acc.description_hash)
      model = existing.model_name if usable else _auto_model(acc)
      if model not in ("zigzag", "analytic"):
        raise LutError(f"{path} holds {existing.model_name} rows, which no cost model can "
                       "extend: write the built LUT elsewhere with --output PATH")
  else:
    if model == "auto":
      model = _auto_model(acc)
      if model == "analytic" and acc.zigzag_hardware:
        notes.append(f"ZigZag is not installed: built the analytic LUT; runs read "
                     f"{default_lut_path(acc)} unless given --config.hw.lut="
                     f"{default_lut_path(acc, 'analytic')}")
    path = default_lut_path(acc, model)
    existing = _read_existing(path)
  name, version = resolve_model(model, acc, mapping_search, residency)
  spaces: list[str] = []
  if existing is not None:
    if existing.accelerator != acc.name:
      raise LutError(f"{path} holds the LUT of accelerator {existing.accelerator!r}, not "
                     f"{acc.name!r}: write {acc.name!r}'s LUT elsewhere with --output PATH")
    if existing.accelerator_hash != acc.description_hash:
      notes.append(f"{path} was built from an older description of {acc.name!r}: every op is "
                   "evaluated again and the rows of other search spaces are dropped (rebuild "
                   "them with their configs)")
    elif (existing.model_name, existing.model_version) != (name, version):
      raise LutError(f"{path} holds {existing.model_name}-{existing.model_version} rows, and this "
                     f"build makes {name}-{version} rows: one LUT file holds one cost model. "
                     f"Delete {path} to rebuild it whole with {name}-{version}, or write "
                     "elsewhere with --output PATH (and point --config.hw.lut at it)")
    else:
      spaces = existing.space_signature.split()
  key = space.identity_key()
  spaces = spaces + [key] if key not in spaces else spaces
  lut = build_lut(required_signatures(space), acc, model=model, cache_path=path,
                  workers=workers or None, progress=progress, space_signature=" ".join(spaces),
                  mapping_search=mapping_search, residency=residency)
  file_rows = len(load_lut(path))
  return SpaceLutBuild(lut=lut, path=path, model=f"{name}-{version}", file_rows=file_rows,
                       spaces=tuple(spaces), notes=tuple(notes))


__all__ = ["DEFAULT_MODEL", "LUT_METRICS", "LutCostSource", "SpaceLutBuild", "build_command",
           "build_space_lut", "check_row_models", "default_lut_path", "is_measured_device",
           "load_checked_lut",
           "lut_cost_source", "required_signatures"]
