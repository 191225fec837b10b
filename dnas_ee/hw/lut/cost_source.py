"""The LUT of a search space as a cost source of the cost layer, checked before use.

Loading checks the file (``load_lut``), that it was built from the current
accelerator description (hash), that it holds one cost model (ZigZag files may
hold ``analytic-1`` rows for pooling/add/gap, nothing else), and that it covers
every op the search space can produce; each failure is a ``LutError`` naming the
command that fixes it. A LUT measured on a JAX device (``jax-cpu``, ...) has no
description to check; the rest is the same.

Example:
  >>> from dnas_ee.hw.lut.build import build_lut
  >>> from dnas_ee.space.signature import OpSignature
  >>> lut = build_lut([OpSignature("conv", 8, 8, 16, 32, kernel=3)], "edge_tpu_like",
  ...                 model="analytic", workers=1, progress=False)
  >>> source = LutCostSource(lut)
  >>> source.metrics, source.model
  (('latency_s', 'energy_j'), 'analytic-2')
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from dnas_ee.hw.accelerators.description import Accelerator
from dnas_ee.hw.accelerators.load import list_accelerators, load_accelerator
from dnas_ee.hw.lut.format import Lut, LutError, is_measured_device, load_lut
from dnas_ee.hw.lut.space import build_command, default_lut_path, required_signatures, zigzag_note
from dnas_ee.hw.models.analytic import MODEL as ANALYTIC_MODEL
from dnas_ee.space.signature import WEIGHTED_OPS, OpSignature

LUT_METRICS = ("latency_s", "energy_j")


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
  hint = build_command(name, output=path if lut_path else None) + zigzag_note(name, path)
  signatures = required_signatures(space)
  lut = load_checked_lut(path, acc, signatures, build_hint=hint)
  return LutCostSource(lut, signatures)


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


__all__ = ["LUT_METRICS", "LutCostSource", "check_row_models", "load_checked_lut",
           "lut_cost_source"]
