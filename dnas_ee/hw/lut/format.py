"""Per-op latency/energy lookup tables (LUTs): the file format (save, load, validate, look up).

Building LUTs lives in ``dnas_ee.hw.lut.build``, importing measured CSVs in
``dnas_ee.hw.lut.measured_csv``, timing ops on a JAX device in ``dnas_ee.hw.lut.measure``.

A LUT is a versioned JSON file (the format is documented in ``hwmodels/README.md``)::

    {"format": "dnas-ee-lut", "version": 1,
     "accelerator": "edge_tpu_like", "accelerator_hash": "<sha256 of the description>",
     "model": {"name": "analytic", "version": "1"},
     "space_signature": "<hash of the search space, given by the caller>",
     "created": "2026-11-23T10:00:00+00:00",
     "rows": [{"op": "conv_h8_w8_ci16_co32_k3_s1_g1_wb8_ab8", "macs": 294912,
               "cycles": 296.0, "latency_s": 5.92e-07, "energy_j": 7.8e-08,
               "model": "analytic-1"}, ...]}

Rows are keyed by ``OpSignature.key()``. A missing op is an error that names the
op and the command that builds the LUT, never a silent zero.

Example:
  >>> from dnas_ee.space.signature import OpSignature
  >>> from dnas_ee.hw.lut.build import build_lut
  >>> sig = OpSignature("conv", 8, 8, 16, 32, kernel=3)
  >>> lut = build_lut([sig], "edge_tpu_like", model="analytic", workers=1, progress=False)
  >>> lut.lookup(sig).macs
  294912
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from dnas_ee.hw.accelerators.description import Accelerator
from dnas_ee.hw.models.op_cost import OpCost
from dnas_ee.space.signature import OpSignature

FORMAT = "dnas-ee-lut"
VERSION = 1
MEASURED = "measured"
# The accelerator name of a LUT measured on a JAX device: ``jax-<platform>`` (``jax-cpu``).
DEVICE_PREFIX = "jax-"
ROW_MODEL_RE = re.compile(r"^(analytic-\d+|zigzag-[0-9A-Za-z.+_-]+-(fixed|search)|measured)$")
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_TOP_KEYS = ("format", "version", "accelerator", "accelerator_hash", "model", "space_signature",
             "created", "rows")
_ROW_KEYS = ("op", "macs", "cycles", "latency_s", "energy_j", "model")
DEFAULT_HINT = "dnas-ee lut build --config <config> --accelerator <name>"


class LutError(ValueError):
  """A LUT that cannot be used (malformed, stale, or missing ops); the message says why and how."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuildStats:
  """How ``build_lut`` obtained its rows: evaluated now, or reused from the cache file."""
  evaluated: int
  reused: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Lut:
  """A loaded or built LUT.

  Attributes:
    accelerator: the accelerator's name.
    accelerator_hash: its ``description_hash`` ('' for a measured LUT of an
      accelerator without a description).
    model_name, model_version: the cost model (``analytic``/``1``,
      ``zigzag``/``3.9.1-fixed``, ``measured``/``1``).
    space_signature: the caller's hash of the search space the LUT was built for.
    created: ISO 8601 creation time.
    rows: ``{op key: OpCost}`` in file order.
    path: the file it was loaded from or saved to, if any.
    build_stats: set by ``build_lut``.
  """
  accelerator: str
  accelerator_hash: str
  model_name: str
  model_version: str
  space_signature: str
  created: str
  rows: Mapping[str, OpCost]
  path: str | None = None
  build_stats: BuildStats | None = dataclasses.field(default=None, compare=False)

  def __len__(self) -> int:
    return len(self.rows)

  def __contains__(self, sig: OpSignature | str) -> bool:
    return op_key(sig) in self.rows

  def keys(self) -> list[str]:
    return list(self.rows)

  def _where(self) -> str:
    return f"LUT {self.path}" if self.path else f"LUT for {self.accelerator!r}"

  def lookup(self, sig: OpSignature | str) -> OpCost:
    """The cost of one op; ``LutError`` naming the op if the LUT lacks it."""
    key = op_key(sig)
    try:
      return self.rows[key]
    except KeyError:
      raise LutError(f"op {key} is not in {self._where()} ({len(self)} rows, accelerator "
                     f"{self.accelerator!r}); rebuild the LUT for the search space that "
                     f"produces it ({DEFAULT_HINT})") from None

  def require(self, signatures: Iterable[OpSignature | str], *, build_hint: str) -> None:
    """Checks that every op is present; otherwise one ``LutError`` listing the missing ones.

    Args:
      signatures: the ops a search space can produce.
      build_hint: the command that builds a complete LUT, quoted in the error.
    """
    wanted = dict.fromkeys(op_key(s) for s in signatures)
    missing = [k for k in wanted if k not in self.rows]
    if missing:
      shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
      raise LutError(f"{self._where()} (accelerator {self.accelerator!r}, model "
                     f"{self.model_name}-{self.model_version}) lacks {len(missing)} of the "
                     f"{len(wanted)} ops the search space needs: {shown}. Build it with: "
                     f"{build_hint}")

  def check_accelerator(self, acc: Accelerator, *, build_hint: str = DEFAULT_HINT) -> None:
    """``LutError`` if the LUT was not built from this exact description (stale LUT).

    Args:
      acc: the description the LUT should come from.
      build_hint: the command that rebuilds the LUT, quoted in the error.
    """
    if not self.accelerator_hash:
      raise LutError(f"{self._where()} was measured on {self.accelerator!r}, which had no "
                     "accelerator description when it was imported, so it cannot be checked "
                     f"against {acc.name!r}; import it with a described accelerator name")
    if self.accelerator_hash != acc.description_hash:
      raise LutError(
          f"{self._where()} is stale: built for {self.accelerator!r} with description hash "
          f"{self.accelerator_hash[:12]}..., but {acc.name!r} ({acc.path}) now hashes to "
          f"{acc.description_hash[:12]}...; the description changed since. Rebuild the LUT "
          f"({build_hint})")

  def arrays(self, signatures: Iterable[OpSignature | str], *,
             build_hint: str = DEFAULT_HINT) -> dict[str, np.ndarray]:
    """Dense float64 arrays (``macs``, ``cycles``, ``latency_s``, ``energy_j``) in the given order."""
    keys = [op_key(s) for s in signatures]
    self.require(keys, build_hint=build_hint)
    rows = [self.rows[k] for k in keys]
    return {field: np.array([float(getattr(r, field)) for r in rows], dtype=np.float64)
            for field in ("macs", "cycles", "latency_s", "energy_j")}

  def to_json(self) -> dict[str, Any]:
    return {
        "format": FORMAT, "version": VERSION, "accelerator": self.accelerator,
        "accelerator_hash": self.accelerator_hash,
        "model": {"name": self.model_name, "version": self.model_version},
        "space_signature": self.space_signature, "created": self.created,
        "rows": [{"op": k, "macs": c.macs, "cycles": float(c.cycles),
                  "latency_s": float(c.latency_s), "energy_j": float(c.energy_j),
                  "model": c.model} for k, c in self.rows.items()],
    }


def op_key(sig: OpSignature | str) -> str:
  return sig if isinstance(sig, str) else sig.key()


def is_measured_device(accelerator) -> bool:
  """Whether ``accelerator`` names a JAX device measured by ``dnas-ee lut measure`` (``jax-*``)."""
  return isinstance(accelerator, str) and accelerator.startswith(DEVICE_PREFIX)


def utc_now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- save / load


def lut_json_text(lut: Lut) -> str:
  """The file text of ``lut``: header fields one per line, then one row per line, sorted by op.

  Compact (about 170 bytes a row) and diff-friendly: rebuilding a shipped LUT for one
  more search space shows up as added lines.
  """
  data = lut.to_json()
  rows = sorted(data.pop("rows"), key=lambda r: r["op"])
  dump = lambda v: json.dumps(v, allow_nan=False)
  lines = [f" {dump(k)}: {dump(v)}," for k, v in data.items()]
  body = ",\n".join(f"  {dump(r)}" for r in rows)
  return "{\n" + "\n".join(lines) + '\n "rows": [\n' + body + ("\n" if rows else "") + " ]\n}\n"


def save_lut(lut: Lut, path: str | os.PathLike) -> Lut:
  """Writes ``lut`` as JSON (atomically: a crash never leaves half a file); returns it with ``path``."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(lut_json_text(lut), encoding="utf-8")
  os.replace(tmp, path)
  return dataclasses.replace(lut, path=str(path))


def _fail(path: object, problem: str, fix: str = "rebuild it with `dnas-ee lut build`") -> None:
  raise LutError(f"LUT file {path}: {problem}. Fix: {fix}")


def _number(path: object, where: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    _fail(path, f"{where} = {value!r} is not a number")
  if not math.isfinite(value) or value < 0:
    _fail(path, f"{where} = {value!r} must be finite and >= 0")
  return float(value)


def _check_fields(path: object, obj: dict, allowed, *, missing: str, unknown: str) -> None:
  """Every field of ``allowed`` present and none other (messages take the key via format)."""
  for k in allowed:
    if k not in obj:
      _fail(path, missing.format(k))
  for k in obj:
    if k not in allowed:
      _fail(path, unknown.format(k))


def _parse_row(path: object, i: int, row: Any) -> tuple[str, OpCost]:
  where = f"rows[{i}]"
  if not isinstance(row, dict):
    _fail(path, f"{where} is a {type(row).__name__}, not an object")
  _check_fields(path, row, _ROW_KEYS, missing=f"{where} lacks the field {{!r}}",
                unknown=f"{where} has an unknown field {{!r}} (allowed: {list(_ROW_KEYS)})")
  key = row["op"]
  try:
    sig = OpSignature.from_key(key) if isinstance(key, str) else None
  except ValueError as err:
    _fail(path, f"{where}.op: {err}")
  if sig is None or sig.key() != key:
    _fail(path, f"{where}.op = {key!r} is not a canonical op signature key")
  macs = row["macs"]
  if isinstance(macs, bool) or not isinstance(macs, int) or macs != sig.macs:
    _fail(path, f"{where}.macs = {macs!r}, but op {key} has {sig.macs} MACs")
  model = row["model"]
  if not isinstance(model, str) or not ROW_MODEL_RE.match(model):
    _fail(path, f"{where}.model = {model!r} is not one of analytic-<n>, zigzag-<version>-fixed, "
          "zigzag-<version>-search, measured")
  return key, OpCost(macs=macs, cycles=_number(path, f"{where}.cycles", row["cycles"]),
                     latency_s=_number(path, f"{where}.latency_s", row["latency_s"]),
                     energy_j=_number(path, f"{where}.energy_j", row["energy_j"]), model=model)


def parse_lut(data: Any, path: object = "<memory>") -> Lut:
  """Validates parsed LUT JSON; ``LutError`` naming the file and the first problem."""
  if not isinstance(data, dict):
    _fail(path, f"top level is a {type(data).__name__}, not a JSON object")
  _check_fields(path, data, _TOP_KEYS, missing="missing top-level field {!r}",
                unknown=f"unknown top-level field {{!r}} (allowed: {list(_TOP_KEYS)})")
  if data["format"] != FORMAT:
    _fail(path, f"format is {data['format']!r}, not {FORMAT!r}: not a dnas-ee LUT")
  if isinstance(data["version"], bool) or data["version"] != VERSION:
    _fail(path, f"version {data['version']!r} is not supported (this dnas-ee reads version "
          f"{VERSION})", "rebuild the LUT with this version of dnas-ee")
  for k in ("accelerator", "accelerator_hash", "space_signature", "created"):
    if not isinstance(data[k], str):
      _fail(path, f"{k} = {data[k]!r} is not a string")
  if not data["accelerator"]:
    _fail(path, "accelerator is empty")
  model = data["model"]
  if (not isinstance(model, dict) or set(model) != {"name", "version"}
      or not all(isinstance(v, str) and v for v in model.values())):
    _fail(path, f"model = {model!r} must be {{'name': str, 'version': str}}")
  if not _HASH_RE.match(data["accelerator_hash"]) and not (
      model["name"] == MEASURED and data["accelerator_hash"] == ""):
    _fail(path, f"accelerator_hash = {data['accelerator_hash']!r} is not a sha256 hex digest")
  try:
    datetime.datetime.fromisoformat(data["created"])
  except ValueError:
    _fail(path, f"created = {data['created']!r} is not an ISO 8601 date")
  if not isinstance(data["rows"], list):
    _fail(path, f"rows is a {type(data['rows']).__name__}, not a list")
  rows: dict[str, OpCost] = {}
  for i, raw in enumerate(data["rows"]):
    key, cost = _parse_row(path, i, raw)
    if key in rows:
      _fail(path, f"rows[{i}]: op {key} appears twice", "keep one row per op")
    rows[key] = cost
  return Lut(accelerator=data["accelerator"], accelerator_hash=data["accelerator_hash"],
             model_name=model["name"], model_version=model["version"],
             space_signature=data["space_signature"], created=data["created"], rows=rows,
             path=str(path))


def load_lut(path: str | os.PathLike) -> Lut:
  """Reads and validates a LUT file.

  Raises:
    LutError: unreadable file, not JSON, wrong format/version, missing or unknown
      fields, wrong types, non-finite or negative numbers, duplicated ops.
  """
  path = Path(path)
  try:
    text = path.read_text(encoding="utf-8")
  except (OSError, UnicodeDecodeError) as err:
    _fail(path, f"cannot read it ({err})", "check the path")
  try:
    data = json.loads(text, parse_constant=lambda c: _fail(path, f"non-finite number {c}"))
  except json.JSONDecodeError as err:
    _fail(path, f"not valid JSON ({err})")
  return parse_lut(data, path)


# --------------------------------------------------------------------------- display


def format_lut_table(lut: Lut) -> str:
  """A readable text table of the LUT (for ``dnas-ee lut show``)."""
  head = [f"LUT {lut.path or '(not saved)'}",
          f"accelerator {lut.accelerator} (hash {lut.accelerator_hash[:12] or '-'}), model "
          f"{lut.model_name}-{lut.model_version}, {len(lut)} ops, created {lut.created}"]
  if lut.space_signature:
    head.append(f"search space signature {lut.space_signature}")
  cols = ("op", "MACs", "cycles", "latency (us)", "energy (uJ)", "model")
  body = [(k, f"{c.macs:,}", f"{c.cycles:,.0f}", f"{c.latency_s * 1e6:.4g}",
           f"{c.energy_j * 1e6:.4g}", c.model) for k, c in sorted(lut.rows.items())]
  widths = [max(len(r[i]) for r in [cols, *body]) for i in range(len(cols))]

  def line(cells: tuple) -> str:
    return "  ".join(c.ljust(w) if i in (0, 5) else c.rjust(w)
                     for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

  rule = "  ".join("-" * w for w in widths)
  return "\n".join([*head, line(cols), rule, *map(line, body)])
