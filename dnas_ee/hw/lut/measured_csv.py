"""Importing per-op measurements from a CSV file into a LUT (rows ``model='measured'``).

The CSV format is documented in ``hwmodels/README.md`` ("Measured LUTs (CSV)").
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from dnas_ee.hw.accelerators.description import Accelerator, AcceleratorError
from dnas_ee.hw.accelerators.load import load_accelerator
from dnas_ee.hw.lut.format import MEASURED, Lut, LutError, utc_now
from dnas_ee.hw.models.op_cost import OpCost
from dnas_ee.space.signature import OpSignature

_CSV_REQUIRED = ("op", "latency_s", "energy_j")
_CSV_OPTIONAL = ("macs", "cycles")


def import_measured_csv(path: str | os.PathLike, accelerator_name: str) -> Lut:
  """Reads per-op measurements into a LUT (rows ``model='measured'``).

  The CSV (documented in ``hwmodels/README.md``) has a header row with the columns
  ``op`` (an ``OpSignature`` key), ``latency_s``, ``energy_j`` and optionally
  ``macs`` (checked against the op) and ``cycles`` (else ``latency_s x clock``,
  which needs a description of the accelerator). Lines starting with ``#`` are
  comments.

  Args:
    path: the CSV file.
    accelerator_name: the device measured; if a description of that name (or
      path) exists, its hash is stored so that ``check_accelerator`` works.

  Raises:
    LutError: naming the file, the line and the problem.
  """
  path = Path(path)
  try:
    acc = load_accelerator(accelerator_name)
  except AcceleratorError:
    acc = None
  try:
    lines = path.read_text(encoding="utf-8").splitlines()
  except (OSError, UnicodeDecodeError) as err:
    raise LutError(f"measured CSV {path}: cannot read it ({err})") from None
  numbered = [(n, line) for n, line in enumerate(lines, 1)
              if line.strip() and not line.lstrip().startswith("#")]
  if not numbered:
    raise LutError(f"measured CSV {path}: no header row. Fix: start with "
                   f"'{','.join(_CSV_REQUIRED + _CSV_OPTIONAL)}'")
  reader = csv.reader(line for _, line in numbered)
  header = [h.strip() for h in next(reader)]
  for col in _CSV_REQUIRED:
    if col not in header:
      raise LutError(f"measured CSV {path}: missing column {col!r} (header: {header}). Fix: "
                     f"the columns are {list(_CSV_REQUIRED)} plus optional {list(_CSV_OPTIONAL)}")
  for col in header:
    if col not in _CSV_REQUIRED + _CSV_OPTIONAL or header.count(col) > 1:
      raise LutError(f"measured CSV {path}: unknown or repeated column {col!r}. Fix: use only "
                     f"{list(_CSV_REQUIRED + _CSV_OPTIONAL)}, each once")
  rows: dict[str, OpCost] = {}
  for (line_no, _), values in zip(numbered[1:], reader):
    where = f"measured CSV {path}, line {line_no}"
    if len(values) != len(header):
      raise LutError(f"{where}: {len(values)} values for {len(header)} columns")
    row = {h: v.strip() for h, v in zip(header, values)}
    rows_key, cost = _measured_row(where, row, acc)
    if rows_key in rows:
      raise LutError(f"{where}: op {rows_key} was already measured on an earlier line; keep one")
    rows[rows_key] = cost
  if not rows:
    raise LutError(f"measured CSV {path}: no data rows after the header")
  return Lut(accelerator=acc.name if acc else accelerator_name,
             accelerator_hash=acc.description_hash if acc else "", model_name=MEASURED,
             model_version="1", space_signature="", created=utc_now(), rows=rows)


def _measured_row(where: str, row: dict[str, str], acc: Accelerator | None) -> tuple[str, OpCost]:
  try:
    sig = OpSignature.from_key(row["op"])
  except ValueError as err:
    raise LutError(f"{where}: {err}") from None

  def number(col: str) -> float:
    try:
      value = float(row[col])
    except ValueError:
      raise LutError(f"{where}: {col}={row[col]!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
      raise LutError(f"{where}: {col}={row[col]!r} must be finite and >= 0")
    return value

  latency, energy = number("latency_s"), number("energy_j")
  if row.get("macs"):
    macs = number("macs")
    if macs != sig.macs:
      raise LutError(f"{where}: macs={row['macs']} but op {sig.key()} has {sig.macs} MACs; fix "
                     "the op key or drop the macs column")
  if row.get("cycles"):
    cycles = number("cycles")
  elif acc is not None:
    cycles = latency * acc.clock_hz
  else:
    raise LutError(f"{where}: no cycles given and no accelerator description to convert "
                   "latency to cycles; add a 'cycles' column or name a described accelerator")
  return sig.key(), OpCost(macs=sig.macs, cycles=cycles, latency_s=latency, energy_j=energy,
                           model=MEASURED)


__all__ = ["import_measured_csv"]
