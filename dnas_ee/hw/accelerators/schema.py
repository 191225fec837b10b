"""The schema of an accelerator description: parsed YAML -> a validated ``Accelerator``.

Every physical number carries a unit (see ``dnas_ee.hw.accelerators.units``) and
is converted to SI. Any problem (missing key, unknown key, wrong unit,
non-positive value) raises one ``AcceleratorError`` naming the file, the key path
and the fix. The numbers of the shipped files come from ZigZag's and Stream's
examples; each file says which (``source:``). Reading the file (and refusing
duplicated keys) is ``dnas_ee.hw.accelerators.load``.

Example:
  >>> import yaml
  >>> from dnas_ee.hw.accelerators.load import accelerator_path
  >>> path = accelerator_path("edge_tpu_like")
  >>> acc = parse_accelerator(yaml.safe_load(path.read_text()), path)
  >>> acc.clock_hz, acc.array_size
  (500000000.0, 1024)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from dnas_ee.hw.accelerators.description import (LOOP_DIMS, OPERANDS, PORT_KINDS, Accelerator,
                                                 AcceleratorError, DramSpec, LinkSpec,
                                                 MemoryLevel)
from dnas_ee.hw.accelerators.units import UnitError, parse_quantity

FORMAT = "dnas-ee-accelerator"
VERSION = 1


# --------------------------------------------------------------------------- schema helpers


class _Reader:
  """Walks the parsed YAML, raising ``AcceleratorError`` with the key path on the first problem."""

  def __init__(self, path: Path):
    self.path = path

  def fail(self, key: str, problem: str, fix: str):
    raise AcceleratorError(self.path, key, problem, fix)

  def mapping(self, value: Any, key: str, required: tuple[str, ...],
              optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, dict):
      self.fail(key or "<top level>", f"expected a mapping, got {type(value).__name__}",
                f"write '{key or 'the file'}' as 'key: value' lines with keys {list(required)}")
    for k in value:
      if k not in required and k not in optional:
        self.fail(_join(key, k), "unknown key",
                  f"remove it or correct its spelling; allowed here: {list(required + optional)}")
    for k in required:
      if k not in value:
        self.fail(_join(key, k), "missing key", f"add '{k}:' under '{key or 'the top level'}'")
    return value

  def quantity(self, value: Any, key: str, *kinds: str, allow_zero: bool = False) -> tuple[float, str]:
    try:
      return parse_quantity(value, *kinds, allow_zero=allow_zero)
    except UnitError as err:
      self.fail(key, str(err), "write '<number> <unit>' with one of the units named")

  def integer(self, value: Any, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
      self.fail(key, f"expected an integer >= {minimum}, got {value!r}",
                f"write a whole number >= {minimum}")
    return value

  def string(self, value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
      self.fail(key, f"expected a non-empty string, got {value!r}", "write some text")
    return value

  def choice(self, value: Any, key: str, allowed: tuple) -> Any:
    if isinstance(value, bool) != isinstance(allowed[0], bool) or value not in allowed:
      self.fail(key, f"{value!r} is not allowed", f"use one of {list(allowed)}")
    return value

  def str_list(self, value: Any, key: str, allowed: tuple[str, ...], nonempty: bool = True) -> tuple:
    if not isinstance(value, list) or (nonempty and not value):
      self.fail(key, f"expected a list, got {value!r}", f"write a list such as {list(allowed[:2])}")
    for item in value:
      if item not in allowed:
        self.fail(key, f"{item!r} is not allowed", f"use items from {list(allowed)}")
    if len(set(value)) != len(value):
      self.fail(key, f"duplicated entries in {value}", "list each entry once")
    return tuple(value)


def _join(prefix: str, key: object) -> str:
  return f"{prefix}.{key}" if prefix else str(key)


def _energy_per_bit(r: _Reader, value: Any, key: str, access_bits: float) -> float:
  """Energy per bit from 'x pJ/bit' or 'x pJ/access' (one access moves ``access_bits``)."""
  joules, kind = r.quantity(value, key, "energy_per_bit", "energy_per_access")
  return joules if kind == "energy_per_bit" else joules / access_bits


def _bits_per_cycle(r: _Reader, value: Any, key: str, clock_hz: float) -> float:
  amount, kind = r.quantity(value, key, "bits_per_cycle", "bytes_per_s")
  return amount if kind == "bits_per_cycle" else amount * 8.0 / clock_hz


# --------------------------------------------------------------------------- sections


def _parse_memory(r: _Reader, name: str, raw: Any, key: str, unrolled: tuple[str, ...]) -> MemoryLevel:
  fields = ("size", "operands", "broadcast_dims", "read_bandwidth", "write_bandwidth",
            "read_energy", "write_energy", "ports")
  m = r.mapping(raw, key, fields)
  size = r.quantity(m["size"], f"{key}.size", "size")[0]
  if size != int(size):
    r.fail(f"{key}.size", f"{m['size']!r} is not a whole number of bits", "give a size in whole bits")
  broadcast = m["broadcast_dims"]
  if not isinstance(broadcast, list):
    r.fail(f"{key}.broadcast_dims", f"expected a list, got {broadcast!r}",
           "write [] (one instance per MAC) or a list of unrolled dims, e.g. [OX, OY]")
  broadcast = r.str_list(broadcast, f"{key}.broadcast_dims", unrolled, nonempty=False)
  read_bw = r.quantity(m["read_bandwidth"], f"{key}.read_bandwidth", "bits_per_cycle")[0]
  write_bw = r.quantity(m["write_bandwidth"], f"{key}.write_bandwidth", "bits_per_cycle")[0]
  return MemoryLevel(
      name=name, size_bits=int(size),
      operands=r.str_list(m["operands"], f"{key}.operands", OPERANDS),
      broadcast_dims=broadcast,
      read_bits_per_cycle=read_bw, write_bits_per_cycle=write_bw,
      read_j_per_bit=_energy_per_bit(r, m["read_energy"], f"{key}.read_energy", read_bw),
      write_j_per_bit=_energy_per_bit(r, m["write_energy"], f"{key}.write_energy", write_bw),
      ports=r.choice(m["ports"], f"{key}.ports", PORT_KINDS))


def _parse_memories(r: _Reader, raw: Any, unrolled: tuple[str, ...]) -> tuple[MemoryLevel, ...]:
  if not isinstance(raw, dict) or not raw:
    r.fail("memories", f"expected a non-empty mapping of memory name -> fields, got {raw!r}",
           "list the on-chip memories innermost first, e.g. 'sram_2MB: {size: 2 MiB, ...}'")
  memories = tuple(_parse_memory(r, str(n), v, f"memories.{n}", unrolled) for n, v in raw.items())
  for operand in OPERANDS:
    chain = [m for m in memories if operand in m.operands]
    if not chain:
      r.fail("memories", f"no on-chip memory holds operand {operand}",
             f"add {operand} to the 'operands' of the memory that feeds the array with it")
    for inner, outer in zip(chain, chain[1:]):
      if outer.size_bits < inner.size_bits:
        r.fail(f"memories.{outer.name}", f"holds {operand} but is smaller than {inner.name} "
               "listed before it", "list the memories innermost (smallest) first")
  return memories


def _parse_dram(r: _Reader, raw: Any, clock_hz: float) -> DramSpec:
  d = r.mapping(raw, "dram", ("read_bandwidth", "write_bandwidth", "read_energy", "write_energy",
                              "ports"))
  read_bw = _bits_per_cycle(r, d["read_bandwidth"], "dram.read_bandwidth", clock_hz)
  write_bw = _bits_per_cycle(r, d["write_bandwidth"], "dram.write_bandwidth", clock_hz)
  return DramSpec(
      read_bits_per_cycle=read_bw, write_bits_per_cycle=write_bw,
      read_j_per_bit=_energy_per_bit(r, d["read_energy"], "dram.read_energy", read_bw),
      write_j_per_bit=_energy_per_bit(r, d["write_energy"], "dram.write_energy", write_bw),
      ports=r.choice(d["ports"], "dram.ports", PORT_KINDS))


def _parse_cores(r: _Reader, raw: Any) -> tuple[int, tuple[int, int], LinkSpec | None]:
  c = r.mapping(raw, "cores", ("count", "mesh"), ("link",))
  count = r.integer(c["count"], "cores.count")
  mesh = c["mesh"]
  if (not isinstance(mesh, list) or len(mesh) != 2
      or any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in mesh)):
    r.fail("cores.mesh", f"expected [rows, cols] of positive integers, got {mesh!r}",
           "write e.g. [2, 2] for four cores, [1, 1] for one")
  if mesh[0] * mesh[1] != count:
    r.fail("cores.mesh", f"{mesh[0]}x{mesh[1]} mesh does not hold cores.count={count} cores",
           "make rows x cols equal the core count")
  if count == 1:
    if c.get("link") is not None:
      r.fail("cores.link", "a single core has no core-to-core link", "remove 'link' or raise 'count'")
    return count, (mesh[0], mesh[1]), None
  if "link" not in c:
    r.fail("cores.link", "missing key: a multi-core accelerator needs its core-to-core link",
           "add 'link: {bandwidth: 32 bit/cycle, energy: 0 pJ/bit}' with the real values")
  link = r.mapping(c["link"], "cores.link", ("bandwidth", "energy"))
  # The link energy may be 0: Stream charges link activity 0 pJ/bit and counts the
  # memory reads and writes at both ends instead (see dnas_ee.hw.models.core_transfer).
  return count, (mesh[0], mesh[1]), LinkSpec(
      bits_per_cycle=r.quantity(link["bandwidth"], "cores.link.bandwidth", "bits_per_cycle")[0],
      j_per_bit=r.quantity(link["energy"], "cores.link.energy", "energy_per_bit",
                           allow_zero=True)[0])


def _resolve_zigzag_ref(r: _Reader, ref: Any, key: str) -> str:
  """``zigzag:<path in package>`` stays symbolic (resolved when ZigZag runs); a local
  path is resolved against the description's folder and must exist."""
  ref = r.string(ref, key)
  if ref.startswith("zigzag:"):
    if not ref[len("zigzag:"):].endswith(".yaml"):
      r.fail(key, f"{ref!r} does not name a .yaml file", "write e.g. 'zigzag:inputs/hardware/x.yaml'")
    return ref
  local = (r.path.parent / ref).resolve()
  if not local.is_file():
    r.fail(key, f"ZigZag file {ref!r} not found (looked at {local})",
           "give a path relative to the description's folder, or 'zigzag:inputs/...' for a file "
           "shipped inside the zigzag-dse package")
  return str(local)


def _parse_precision(r: _Reader, raw: Any) -> tuple[int, tuple[int, ...], bool, float]:
  p = r.mapping(raw, "precision", ("reference_bits", "supported_bits", "bit_packing",
                                   "multiplier_energy_fraction"))
  ref = r.integer(p["reference_bits"], "precision.reference_bits", minimum=2)
  bits = p["supported_bits"]
  if not isinstance(bits, list) or not bits:
    r.fail("precision.supported_bits", f"expected a non-empty list, got {bits!r}",
           "write e.g. [2, 4, 8]")
  for i, b in enumerate(bits):
    r.integer(b, f"precision.supported_bits[{i}]", minimum=1)
  if len(set(bits)) != len(bits):
    r.fail("precision.supported_bits", f"duplicated entries in {bits}", "list each width once")
  if ref not in bits:
    r.fail("precision.supported_bits", f"the reference precision {ref} is not listed",
           f"add {ref} to supported_bits")
  packing = p["bit_packing"]
  if not isinstance(packing, bool):
    r.fail("precision.bit_packing", f"expected true or false, got {packing!r}",
           "write true (BitFusion-style packing) or false")
  fraction = p["multiplier_energy_fraction"]
  if (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
      or not 0.0 < fraction <= 1.0):
    r.fail("precision.multiplier_energy_fraction", f"expected a number in (0, 1], got {fraction!r}",
           "write the multiplier's share of the MAC energy, e.g. 0.667 (Horowitz 2014)")
  return ref, tuple(sorted(bits)), packing, float(fraction)


def _parse_unrolling(r: _Reader, raw: Any) -> tuple[tuple[str, int], ...]:
  if not isinstance(raw, dict) or not raw:
    r.fail("mac_array.spatial_unrolling", f"expected a mapping loop dim -> size, got {raw!r}",
           f"write e.g. {{K: 32, C: 32}} with dims from {list(LOOP_DIMS)}")
  for dim, size in raw.items():
    if dim not in LOOP_DIMS:
      r.fail(f"mac_array.spatial_unrolling.{dim}", "unknown loop dimension",
             f"use dims from {list(LOOP_DIMS)}")
    r.integer(size, f"mac_array.spatial_unrolling.{dim}")
  return tuple((str(d), int(s)) for d, s in raw.items())


# --------------------------------------------------------------------------- the file


_TOP_KEYS = ("format", "version", "name", "description", "source", "clock", "precision",
             "mac_array", "vector_unit", "memories", "dram", "cores")


def parse_accelerator(raw: Any, path: Path) -> Accelerator:
  """Validates already-parsed YAML content (``path`` is used in messages and for ZigZag refs)."""
  r = _Reader(Path(path))
  top = r.mapping(raw, "", _TOP_KEYS, ("zigzag",))
  if top["format"] != FORMAT:
    r.fail("format", f"expected {FORMAT!r}, got {top['format']!r}", f"write 'format: {FORMAT}'")
  if isinstance(top["version"], bool) or top["version"] != VERSION:
    r.fail("version", f"unsupported version {top['version']!r}", f"write 'version: {VERSION}'")
  name = r.string(top["name"], "name")
  if name != r.path.stem:
    r.fail("name", f"name {name!r} differs from the file name {r.path.name!r}",
           f"rename the file to {name}.yaml or set 'name: {r.path.stem}'")
  description = r.string(top["description"], "description")
  source = r.mapping(top["source"], "source", ("derived_from",), ("notes",))
  derived = source["derived_from"]
  if not isinstance(derived, list) or not derived:
    r.fail("source.derived_from", "expected a non-empty list of files the numbers come from",
           "list e.g. 'zigzag-dse 3.9.1: zigzag/inputs/hardware/edge_tpu_like.yaml'")
  sources = tuple(r.string(s, f"source.derived_from[{i}]") for i, s in enumerate(derived))
  if "notes" in source:
    r.string(source["notes"], "source.notes")
  clock_hz = r.quantity(top["clock"], "clock", "frequency")[0]
  ref, bits, packing, fraction = _parse_precision(r, top["precision"])
  array = r.mapping(top["mac_array"], "mac_array", ("spatial_unrolling", "mac_energy"))
  unrolling = _parse_unrolling(r, array["spatial_unrolling"])
  mac_energy = r.quantity(array["mac_energy"], "mac_array.mac_energy", "energy")[0]
  vector = r.mapping(top["vector_unit"], "vector_unit", ("lanes", "op_energy"))
  lanes = r.integer(vector["lanes"], "vector_unit.lanes")
  op_energy = r.quantity(vector["op_energy"], "vector_unit.op_energy", "energy")[0]
  memories = _parse_memories(r, top["memories"], tuple(d for d, _ in unrolling))
  dram = _parse_dram(r, top["dram"], clock_hz)
  count, mesh, link = _parse_cores(r, top["cores"])
  zz_hw = zz_map = None
  if top.get("zigzag") is not None:
    zz = r.mapping(top["zigzag"], "zigzag", ("hardware", "mapping"))
    zz_hw = _resolve_zigzag_ref(r, zz["hardware"], "zigzag.hardware")
    zz_map = _resolve_zigzag_ref(r, zz["mapping"], "zigzag.mapping")
  fields = dict(
      name=name, clock_hz=clock_hz, reference_bits=ref, supported_bits=bits, bit_packing=packing,
      multiplier_energy_fraction=fraction, spatial_unrolling=unrolling, mac_energy_j=mac_energy,
      vector_lanes=lanes, vector_op_energy_j=op_energy, memories=memories, dram=dram,
      num_cores=count, mesh=mesh, link=link, zigzag_hardware=zz_hw, zigzag_mapping=zz_map)
  return Accelerator(description=description, sources=sources, path=str(r.path),
                     description_hash=_content_hash(fields), **fields)


def _content_hash(fields: dict[str, Any]) -> str:
  """sha256 of the normalized numbers (free text and the file's location excluded)."""
  def plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
      return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
      return [plain(v) for v in value]
    if isinstance(value, float):
      return repr(value)
    return value

  canon = {k: plain(v) for k, v in fields.items()}
  for key in ("zigzag_hardware", "zigzag_mapping"):  # a local ZigZag file counts by content
    ref = canon[key]
    if ref and not ref.startswith("zigzag:"):
      canon[key] = "sha256:" + hashlib.sha256(Path(ref).read_bytes()).hexdigest()
  text = json.dumps(canon, sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode("utf-8")).hexdigest()
