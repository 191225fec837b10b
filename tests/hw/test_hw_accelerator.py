"""Accelerator descriptions: shipped files, unit conversion, and schema errors (fuzzed)."""
from __future__ import annotations

import copy
import re
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
import yaml
from hw_tiny_accelerator import TINY_YAML, write_tiny
from hypothesis import HealthCheck, given, settings

from dnas_ee.hw.accelerators.description import AcceleratorError
from dnas_ee.hw.accelerators.load import hwmodels_dir, list_accelerators, load_accelerator
from dnas_ee.hw.accelerators.units import UnitError, parse_quantity

SHIPPED = ("edge_tpu_like", "eyeriss_like", "quad_core_edge_tpu_like", "tesla_npu_like")


def test_shipped_accelerators_load():
  assert set(SHIPPED) <= set(list_accelerators())
  hashes = set()
  for name in list_accelerators():
    acc = load_accelerator(name)
    assert acc.name == name and acc.clock_hz > 0 and acc.array_size > 0
    assert re.fullmatch(r"[0-9a-f]{64}", acc.description_hash)
    assert acc.description_hash == load_accelerator(name).description_hash  # deterministic
    hashes.add(acc.description_hash)
  assert len(hashes) == len(list_accelerators())


def test_quad_core_matches_reference_a():
  acc = load_accelerator("quad_core_edge_tpu_like")
  assert acc.num_cores == 4 and acc.mesh == (2, 2)
  assert acc.unrolling == {"K": 32, "C": 32}
  assert acc.mac_energy_j == pytest.approx(0.04e-12)
  assert acc.memory_chain("I")[-1].size_bits == 2 * 2**20 * 8
  assert acc.link.bits_per_cycle == 32 and acc.link.j_per_bit == 0.0
  assert acc.reference_bits == 8


def test_units_convert_to_si(tiny):
  assert tiny.clock_hz == 1e9
  assert tiny.mac_energy_j == pytest.approx(1e-12)
  sram = tiny.memories[2]
  assert sram.size_bits == 8192
  assert sram.read_j_per_bit == pytest.approx(1e-12)       # 64 pJ per 64-bit access
  assert tiny.dram.write_bits_per_cycle == pytest.approx(16)  # 2 GB/s at 1 GHz
  assert tiny.dram_read_bytes_per_s == pytest.approx(2e9)
  assert tiny.instances(tiny.memories[0]) == 8 and tiny.instances(sram) == 1


@pytest.mark.parametrize("text, kinds, value", [
    ("500 MHz", ("frequency",), 5e8), ("2 MiB", ("size",), 16777216.0),
    ("0.04 pJ", ("energy",), 4e-14), ("1e3 fJ/bit", ("energy_per_bit",), 1e-12),
    ("12.8 GB/s", ("bytes_per_s",), 1.28e10), ("4 B/cycle", ("bits_per_cycle",), 32.0)])
def test_parse_quantity(text, kinds, value):
  assert parse_quantity(text, *kinds)[0] == pytest.approx(value)


@pytest.mark.parametrize("text", ["0.04", 0.04, "0.04 pj", "2 MB", "-1 pJ", "0 pJ", "nan pJ",
                                  "inf pJ", "pJ", True, None, [1]])
def test_parse_quantity_rejects(text):
  with pytest.raises(UnitError):
    parse_quantity(text, "energy", "size")


def test_hash_ignores_free_text_but_not_numbers(tmp_path):
  def hash_of(folder: str, text: str) -> str:
    (tmp_path / folder).mkdir()
    return load_accelerator(write_tiny(tmp_path / folder, text)).description_hash

  base = hash_of("a", TINY_YAML)
  assert hash_of("b", TINY_YAML.replace("a hand-checkable", "another")) == base
  assert hash_of("c", TINY_YAML.replace("mac_energy: 1 pJ", "mac_energy: 1000 fJ")) == base
  assert hash_of("d", TINY_YAML.replace("mac_energy: 1 pJ", "mac_energy: 1.1 pJ")) != base


def test_env_var_overrides_hwmodels(tmp_path, monkeypatch):
  (tmp_path / "accelerators").mkdir()
  write_tiny(tmp_path / "accelerators")
  monkeypatch.setenv("DNAS_EE_HWMODELS", str(tmp_path))
  assert hwmodels_dir() == tmp_path.resolve()
  assert list_accelerators() == ["tiny"]
  assert load_accelerator("tiny").name == "tiny"


def test_unknown_name_lists_shipped():
  with pytest.raises(AcceleratorError, match="edge_tpu_like"):
    load_accelerator("no_such_accelerator")


# --------------------------------------------------------------------------- schema errors

def _replace(old: str, new: str):
  def mutate(text: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)
  return mutate


# (mutation of the YAML text, key path the error must name, words the error must contain)
CASES = {
    "missing key": (_replace("clock: 1 GHz\n", ""), "clock", "missing key"),
    "missing nested key": (_replace("    read_energy: 64 pJ/access\n", ""),
                           "memories.sram.read_energy", "missing key"),
    "unknown key": (_replace("clock: 1 GHz\n", "clock: 1 GHz\nclok: 1 GHz\n"), "clok",
                    "unknown key"),
    "unknown nested key": (_replace("  bit_packing: false\n",
                                    "  bit_packing: false\n  bitpacking: true\n"),
                           "precision.bitpacking", "unknown key"),
    "duplicated key": (_replace("clock: 1 GHz\n", "clock: 1 GHz\nclock: 2 GHz\n"), "clock",
                       "duplicated key"),
    "duplicated memory": (_replace("  acc:\n", "  rf:\n"), "rf", "duplicated key"),
    "bad unit": (_replace("clock: 1 GHz", "clock: 1 GJ"), "clock", "not allowed"),
    "no unit": (_replace("mac_energy: 1 pJ", "mac_energy: 1.0"), "mac_array.mac_energy",
                "no unit"),
    "wrong kind of unit": (_replace("size: 1 KiB", "size: 1 pJ"), "memories.sram.size",
                           "not allowed"),
    "ambiguous size unit": (_replace("size: 1 KiB", "size: 1 KB"), "memories.sram.size",
                            "not allowed"),
    "negative value": (_replace("read_energy: 10 pJ/bit", "read_energy: -10 pJ/bit"),
                       "dram.read_energy", ">"),
    "zero value": (_replace("lanes: 4", "lanes: 0"), "vector_unit.lanes", ">= 1"),
    "zero quantity": (_replace("clock: 1 GHz", "clock: 0 GHz"), "clock", "> 0"),
    "not yaml": (lambda text: "clock: [1 GHz\n  : {{", "", "not valid YAML"),
    "not a mapping": (lambda text: "- 1\n- 2\n", "<top level>", "expected a mapping"),
    "wrong format": (_replace("format: dnas-ee-accelerator", "format: zigzag"), "format",
                     "expected"),
    "name mismatch": (_replace("name: tiny", "name: small"), "name", "differs from the file"),
    "bad dim": (_replace("broadcast_dims: [C]", "broadcast_dims: [OX]"),
                "memories.acc.broadcast_dims", "not allowed"),
    "bad operand": (_replace("operands: [O]", "operands: [P]"), "memories.acc.operands",
                    "not allowed"),
    "reference not supported": (_replace("supported_bits: [2, 4, 8, 16]", "supported_bits: [2, 4]"),
                                "precision.supported_bits", "reference precision"),
    "bad fraction": (_replace("multiplier_energy_fraction: 0.5", "multiplier_energy_fraction: 1.5"),
                     "precision.multiplier_energy_fraction", "(0, 1]"),
    "mesh mismatch": (_replace("mesh: [1, 1]", "mesh: [2, 2]"), "cores.mesh", "does not hold"),
    "multi-core without link": (_replace("  count: 1\n  mesh: [1, 1]", "  count: 2\n  mesh: [1, 2]"),
                                "cores.link", "missing key"),
    "memories out of order": (_replace("    size: 64 bit\n", "    size: 2 KiB\n"),
                              "memories.sram", "innermost"),
    "bool as int": (_replace("lanes: 4", "lanes: true"), "vector_unit.lanes", "integer"),
    "missing zigzag file": (lambda t: t + "zigzag: {hardware: nope.yaml, mapping: nope.yaml}\n",
                            "zigzag.hardware", "not found"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_schema_errors_name_the_key(tmp_path, case):
  mutate, key, words = CASES[case]
  path = write_tiny(tmp_path, mutate(TINY_YAML))
  with pytest.raises(AcceleratorError) as info:
    load_accelerator(path)
  message = str(info.value)
  assert str(path) in message and words in message and "Fix:" in message
  if key:
    assert f"key '{key}'" in message
  assert isinstance(info.value, ValueError)


def test_missing_file():
  with pytest.raises(AcceleratorError, match="cannot read"):
    load_accelerator("/nonexistent/dir/x.yaml")


# --------------------------------------------------------------------------- fuzzing

def _shipped_raw(name: str) -> dict:
  path = hwmodels_dir() / "accelerators" / f"{name}.yaml"
  raw = yaml.safe_load(path.read_text())
  for k in ("hardware", "mapping"):  # local ZigZag files: make the references absolute
    ref = raw["zigzag"][k]
    if not ref.startswith("zigzag:"):
      raw["zigzag"][k] = str((path.parent / ref).resolve())
  return raw


def _paths(node, prefix=()):
  """Every key path of nested dicts/lists (list items as int indices)."""
  items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
  for k, v in items:
    yield prefix + (k,), v
    yield from _paths(v, prefix + (k,))


def _dotted(path) -> str:
  out = ""
  for k in path:
    out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else str(k))
  return out


TEXT_FIELDS = ("description", "source", "zigzag", "name", "format")
OPTIONAL = {("zigzag",), ("source", "notes")}
BAD_VALUES = [-1, 0, "abc", None, True, "1 parsec", "-3 pJ", [], {"x": 1}]


def _load_mutated(raw: dict, name: str):
  with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_accelerator(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(SHIPPED), action=st.sampled_from(["delete", "inject",
                                                                             "corrupt"]))
def test_fuzzed_descriptions_raise_accelerator_error(data, name, action):
  raw = _shipped_raw(name)
  assert _load_mutated(copy.deepcopy(raw), name).name == name
  paths = list(_paths(raw))
  if action == "delete":
    candidates = [p for p, _ in paths if not isinstance(p[-1], int) and p not in OPTIONAL
                  and not (p[0] == "memories" and len(p) == 2)
                  and not (p[:2] == ("mac_array", "spatial_unrolling") and len(p) == 3)]
    path = data.draw(st.sampled_from(candidates))
    parent = raw
    for k in path[:-1]:
      parent = parent[k]
    del parent[path[-1]]
    with pytest.raises(AcceleratorError) as info:
      _load_mutated(raw, name)
    assert f"key '{_dotted(path)}'" in str(info.value)
  elif action == "inject":
    nodes = [((), raw)] + [(p, v) for p, v in paths if isinstance(v, dict)]
    path, node = data.draw(st.sampled_from(nodes))
    node["zz_unknown"] = data.draw(st.sampled_from(["1 GHz", 3, None]))
    with pytest.raises(AcceleratorError) as info:
      _load_mutated(raw, name)
    assert _dotted(path + ("zz_unknown",)) in str(info.value)
  else:
    leaves = [p for p, v in paths if not isinstance(v, (dict, list))]
    path = data.draw(st.sampled_from(leaves))
    parent = raw
    for k in path[:-1]:
      parent = parent[k]
    original = parent[path[-1]]
    parent[path[-1]] = data.draw(st.sampled_from(BAD_VALUES))
    if path[0] in TEXT_FIELDS or isinstance(original, bool):
      # free text (and a flipped flag) may stay valid; it must never crash differently
      try:
        _load_mutated(raw, name)
      except AcceleratorError:
        pass
    else:
      with pytest.raises(AcceleratorError) as info:
        _load_mutated(raw, name)
      assert f"key '{path[0]}" in str(info.value)
