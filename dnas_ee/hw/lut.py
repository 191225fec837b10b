"""Per-op latency/energy lookup tables (LUTs): build, save, load, validate, look up.

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
  >>> sig = OpSignature("conv", 8, 8, 16, 32, kernel=3)
  >>> lut = build_lut([sig], "edge_tpu_like", model="analytic", workers=1, progress=False)
  >>> lut.lookup(sig).macs
  294912
"""
from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import datetime
import json
import math
import multiprocessing
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from dnas_ee.hw.accelerator import Accelerator, AcceleratorError, load_accelerator
from dnas_ee.hw.analytic import MODEL as ANALYTIC_MODEL
from dnas_ee.hw.analytic import evaluate_analytic
from dnas_ee.hw.op_cost import OpCost
from dnas_ee.hw import zigzag_model
from dnas_ee.hw.zigzag_model import ZigZagError
from dnas_ee.space.signature import OpSignature

FORMAT = "dnas-ee-lut"
VERSION = 1
MEASURED = "measured"
ROW_MODEL_RE = re.compile(r"^(analytic-\d+|zigzag-[0-9A-Za-z.+_-]+-(fixed|search)|measured)$")
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_TOP_KEYS = ("format", "version", "accelerator", "accelerator_hash", "model", "space_signature",
             "created", "rows")
_ROW_KEYS = ("op", "macs", "cycles", "latency_s", "energy_j", "model")
_CSV_REQUIRED = ("op", "latency_s", "energy_j")
_CSV_OPTIONAL = ("macs", "cycles")
_DEFAULT_HINT = "dnas-ee lut build --config <config> --accelerator <name>"


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
    return _key(sig) in self.rows

  def keys(self) -> list[str]:
    return list(self.rows)

  def _where(self) -> str:
    return f"LUT {self.path}" if self.path else f"LUT for {self.accelerator!r}"

  def lookup(self, sig: OpSignature | str) -> OpCost:
    """The cost of one op; ``LutError`` naming the op if the LUT lacks it."""
    key = _key(sig)
    try:
      return self.rows[key]
    except KeyError:
      raise LutError(f"op {key} is not in {self._where()} ({len(self)} rows, accelerator "
                     f"{self.accelerator!r}); rebuild the LUT for the search space that "
                     f"produces it ({_DEFAULT_HINT})") from None

  def require(self, signatures: Iterable[OpSignature | str], *, build_hint: str) -> None:
    """Checks that every op is present; otherwise one ``LutError`` listing the missing ones.

    Args:
      signatures: the ops a search space can produce.
      build_hint: the command that builds a complete LUT, quoted in the error.
    """
    wanted = dict.fromkeys(_key(s) for s in signatures)
    missing = [k for k in wanted if k not in self.rows]
    if missing:
      shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
      raise LutError(f"{self._where()} (accelerator {self.accelerator!r}, model "
                     f"{self.model_name}-{self.model_version}) lacks {len(missing)} of the "
                     f"{len(wanted)} ops the search space needs: {shown}. Build it with: "
                     f"{build_hint}")

  def check_accelerator(self, acc: Accelerator, *, build_hint: str = _DEFAULT_HINT) -> None:
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
             build_hint: str = _DEFAULT_HINT) -> dict[str, np.ndarray]:
    """Dense float64 arrays (``macs``, ``cycles``, ``latency_s``, ``energy_j``) in the given order."""
    keys = [_key(s) for s in signatures]
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


def _key(sig: OpSignature | str) -> str:
  return sig if isinstance(sig, str) else sig.key()


def _now() -> str:
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


# --------------------------------------------------------------------------- build


def _resolve_model(model: str, acc: Accelerator, mapping_search: bool) -> tuple[str, str]:
  """``(name, version)`` of the model that will fill the LUT."""
  if model not in ("auto", "zigzag", "analytic"):
    raise ValueError(f"model={model!r}: use 'auto', 'zigzag' or 'analytic'")
  if model == "auto":
    model = "zigzag" if zigzag_model.zigzag_available() and acc.zigzag_hardware else "analytic"
  if model == "analytic":
    return "analytic", ANALYTIC_MODEL.split("-", 1)[1]
  if not acc.zigzag_hardware:
    raise ZigZagError(f"model='zigzag' but accelerator {acc.name!r} ({acc.path}) names no ZigZag "
                      "files; use model='analytic' or add a 'zigzag:' section")
  return "zigzag", f"{zigzag_model.zigzag_version()}-{'search' if mapping_search else 'fixed'}"


def _evaluate(job: tuple[str, Accelerator, str, bool]) -> tuple[str, OpCost]:
  """One LUT row (module level so that worker processes can run it)."""
  key, acc, model, mapping_search = job
  sig = OpSignature.from_key(key)
  if model == "zigzag":
    return key, zigzag_model.evaluate_zigzag(sig, acc, mapping_search=mapping_search)
  return key, evaluate_analytic(sig, acc)


def _run_jobs(jobs: list[tuple], workers: int, progress: bool, desc: str) -> dict[str, OpCost]:
  from tqdm.auto import tqdm
  results: dict[str, OpCost] = {}
  with tqdm(total=len(jobs), desc=desc, disable=not progress, unit="op") as bar:
    if workers <= 1 or len(jobs) <= 1:
      for job in jobs:
        key, cost = _evaluate(job)
        results[key] = cost
        bar.update()
      return results
    # spawn, not fork: the parent may hold JAX/XLA threads, which fork does not survive.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
      futures = [pool.submit(_evaluate, job) for job in jobs]
      for future in concurrent.futures.as_completed(futures):
        key, cost = future.result()
        results[key] = cost
        bar.update()
  return results


def _reusable_rows(cache_path: Path, acc: Accelerator, name: str, version: str,
                   progress: bool) -> dict[str, OpCost]:
  if not cache_path.exists():
    return {}
  try:
    cached = load_lut(cache_path)
  except LutError as err:
    raise LutError(f"{err} (it is the cache of this build: delete it or pass another "
                   "cache_path to rebuild from scratch)") from None
  if (cached.accelerator_hash == acc.description_hash and cached.model_name == name
      and cached.model_version == version):
    return dict(cached.rows)
  if progress:
    print(f"dnas-ee: cache {cache_path} was built for {cached.accelerator!r} "
          f"({cached.accelerator_hash[:12]}, {cached.model_name}-{cached.model_version}), not "
          f"{acc.name!r} ({acc.description_hash[:12]}, {name}-{version}): evaluating every op "
          "and overwriting it", file=sys.stderr)
  return {}


# Rough seconds per op (measured with zigzag-dse 3.9.1), and the start-up of one worker
# process (it imports dnas_ee, hence JAX): a pool only pays off for long builds.
_SECONDS_PER_OP = {"analytic": 0.001, "zigzag-fixed": 0.03, "zigzag-search": 2.5}
_POOL_WORTH_S = 20.0


def _default_workers(model_name: str, mapping_search: bool, num_ops: int) -> int:
  """In-process when the whole build is expected to take under ~20 s, else every core."""
  kind = model_name if model_name != "zigzag" else (
      "zigzag-search" if mapping_search else "zigzag-fixed")
  expected_s = num_ops * _SECONDS_PER_OP[kind]
  return (os.cpu_count() or 1) if expected_s > _POOL_WORTH_S else 1


def build_lut(signatures: Iterable[OpSignature], accelerator: Accelerator | str | os.PathLike, *,
              model: str = "auto", cache_path: str | os.PathLike | None = None,
              workers: int | None = None, progress: bool = True, space_signature: str = "",
              mapping_search: bool = False) -> Lut:
  """Evaluates every unique op signature on an accelerator into a LUT.

  Args:
    signatures: the ops (duplicates are evaluated once).
    accelerator: a loaded description, a shipped name, or a path.
    model: ``'zigzag'``, ``'analytic'``, or ``'auto'`` (ZigZag when installed and the
      description names ZigZag files, else analytic). With ZigZag, pooling/add/gap
      rows fall back to the analytic model (their row ``model`` says so).
    cache_path: a LUT file to reuse and update: its rows are reused when it was built
      for the same accelerator hash and model, only new ops are evaluated, and the
      file is rewritten with the union of its rows and the new ones.
    workers: processes to spread the evaluations over (``1``: in this process;
      ``None`` or ``0``: every core when the build is expected to take more than
      ~20 s, i.e. ZigZag with mapping search or thousands of ops, else in-process:
      a worker process needs seconds to start, as it imports dnas_ee and JAX).
    progress: show a tqdm bar and print how many ops were evaluated vs reused.
    space_signature: the caller's hash of the search space, stored in the LUT.
    mapping_search: ZigZag only: search the mapping (slow) instead of the fixed one.

  Returns:
    A ``Lut`` with exactly the requested ops, ``build_stats`` telling evaluated/reused.
  """
  acc = accelerator if isinstance(accelerator, Accelerator) else load_accelerator(accelerator)
  name, version = _resolve_model(model, acc, mapping_search)
  keys = list(dict.fromkeys(_key(s) for s in signatures))
  cached = _reusable_rows(Path(cache_path), acc, name, version, progress) if cache_path else {}
  todo = [k for k in keys if k not in cached]
  workers = _default_workers(name, mapping_search, len(todo)) if not workers else workers
  if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
    raise ValueError(f"workers={workers!r}: give a positive number of processes (1 = in-process, "
                     "None = automatic)")
  fresh = _run_jobs([(k, acc, name, mapping_search) for k in todo],
                    min(workers, max(len(todo), 1)), progress, f"LUT {acc.name} ({name})")
  stats = BuildStats(evaluated=len(todo), reused=len(keys) - len(todo))
  if progress:
    source = f" from {cache_path}" if cache_path else ""
    print(f"dnas-ee: LUT for {acc.name!r} ({name}-{version}): {stats.evaluated} ops evaluated, "
          f"{stats.reused} reused{source}", file=sys.stderr)
  header = dict(accelerator=acc.name, accelerator_hash=acc.description_hash, model_name=name,
                model_version=version, space_signature=space_signature, created=_now())
  lut = Lut(rows={k: cached[k] if k in cached else fresh[k] for k in keys}, build_stats=stats,
            **header)
  if cache_path:
    union = Lut(rows={**cached, **fresh}, **header)
    save_lut(union, cache_path)
    if set(union.rows) == set(keys):  # the cache file holds exactly this LUT
      lut = dataclasses.replace(lut, path=str(cache_path))
  return lut


# --------------------------------------------------------------------------- measured CSV


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
             model_version="1", space_signature="", created=_now(), rows=rows)


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
