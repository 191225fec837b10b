"""ZigZag model: LUT rows equal a direct ZigZag run; descriptions agree with their ZigZag files.

The tests that run ZigZag are skipped, with the reason, when zigzag-dse is not installed
(``pip install -e '.[hw]'``).
"""
from __future__ import annotations

import dataclasses
import logging

import pytest
import yaml

import dnas_ee.hw.models.zigzag_model as zz
from dnas_ee.hw.accelerators.load import list_accelerators, load_accelerator
from dnas_ee.hw.lut.build import build_lut
from dnas_ee.hw.models.analytic import evaluate_analytic
from dnas_ee.hw.models.bit_scaling import cycle_factor, mac_energy_scale
from dnas_ee.space.signature import OpSignature

needs_zigzag = pytest.mark.skipif(
    not zz.zigzag_available(),
    reason="zigzag-dse is not installed: pip install -e '.[hw]' to run the ZigZag tests")

SIGS = [OpSignature("conv", 8, 8, 16, 32, kernel=3),
        OpSignature("conv", 16, 16, 32, 32, kernel=3, stride=2, w_bits=4, a_bits=4),
        OpSignature("conv", 8, 8, 16, 16, kernel=3, groups=16, w_bits=2, a_bits=8),
        OpSignature("dense", 1, 1, 64, 10)]


def test_workload_of_a_depthwise_conv():
  layer, = zz.zigzag_workload(OpSignature("conv", 7, 7, 8, 8, kernel=3, stride=2, groups=8))
  assert layer["loop_sizes"] == [1, 1, 8, 4, 4, 1, 3, 3]
  assert layer["padding"] == [[1, 1], [1, 1]]      # SAME: (4 - 1) * 2 + 3 - 7 = 2
  assert layer["operand_precision"] == {"W": 8, "I": 8, "O": 16, "O_final": 8}
  with pytest.raises(ValueError, match="conv/dense"):
    zz.zigzag_workload(OpSignature("maxpool", 4, 4, 2, 2, kernel=2))


def test_missing_zigzag_is_a_clear_error(monkeypatch):
  monkeypatch.setattr(zz, "zigzag_available", lambda: False)
  acc = load_accelerator("edge_tpu_like")
  with pytest.raises(zz.ZigZagError, match=r"pip install -e '\.\[hw\]'"):
    zz.evaluate_zigzag(SIGS[0], acc)
  with pytest.raises(zz.ZigZagError, match="not installed"):
    build_lut(SIGS, acc, model="zigzag", workers=1, progress=False)
  lut = build_lut(SIGS, acc, model="auto", workers=1, progress=False)  # auto falls back
  assert lut.model_name == "analytic"


def _direct(sig, acc, ordering, tmp_path):
  """ZigZag's public API on the same workload and on-chip hardware file, with the temporal
  ordering written in the mapping."""
  from zigzag.api import get_hardware_performance_zigzag
  mapping = yaml.safe_load(open(zz.resolve_zigzag_file(acc.zigzag_mapping)))
  default = next(m for m in mapping if m["name"] == "default")
  default["temporal_ordering"] = [[dim, size] for dim, size in ordering]
  path = tmp_path / f"mapping_{sig.key()}.yaml"
  path.write_text(yaml.safe_dump(mapping))
  root = logging.getLogger()
  level = root.level
  try:
    energy, latency, cmes = get_hardware_performance_zigzag(
        zz.zigzag_workload(sig), zz.hardware_file(acc.zigzag_hardware, zz.onchip_operands(sig, acc)),
        str(path),
        dump_folder=str(tmp_path / "dump"), nb_spatial_mappings_generated=1,
        loma_show_progress_bar=False)
  finally:
    root.setLevel(level)  # the API sets logging.basicConfig(INFO)
  return energy, latency, cmes[0][1][0][0]


@needs_zigzag
@pytest.mark.parametrize("name", ["edge_tpu_like", "quad_core_edge_tpu_like"])
def test_lut_rows_equal_direct_zigzag(name, tmp_path):
  acc = load_accelerator(name)
  pool = OpSignature("avgpool", 8, 8, 16, 16, kernel=2, stride=2)
  lut = build_lut(SIGS + [pool], acc, model="zigzag", workers=1, progress=False)
  version = zz.zigzag_version()
  assert (lut.model_name, lut.model_version) == ("zigzag", f"{version}-onchip-fixed")
  assert lut.lookup(pool) == evaluate_analytic(pool, acc)        # pools fall back, and say so
  assert lut.lookup(pool).model == "analytic-2"
  for sig in SIGS:
    raw = zz.run_zigzag(sig, acc)
    energy_pj, cycles, cme = _direct(sig, acc, raw.temporal_ordering, tmp_path)
    assert raw.energy_pj == pytest.approx(energy_pj, rel=1e-9)
    assert raw.cycles == pytest.approx(cycles, rel=1e-9)
    scale = mac_energy_scale(sig.w_bits, sig.a_bits, reference_bits=8,
                             multiplier_fraction=acc.multiplier_energy_fraction)
    factor = float(cycle_factor(sig.w_bits, sig.a_bits, reference_bits=8, bit_packing=False))
    expected_cycles = cycles + (factor - 1) * cme.ideal_temporal_cycle
    row = lut.lookup(sig)
    assert row.model == f"zigzag-{version}-onchip-fixed" and row.macs == sig.macs == cme.layer.total_mac_count
    assert row.cycles == pytest.approx(expected_cycles, rel=1e-9)
    assert row.latency_s == pytest.approx(expected_cycles / acc.clock_hz, rel=1e-9)
    assert row.energy_j == pytest.approx((cme.mem_energy + cme.mac_energy * scale) * 1e-12,
                                         rel=1e-9)


@needs_zigzag
def test_mapping_search_is_a_flag():
  acc = load_accelerator("edge_tpu_like")
  sig = OpSignature("dense", 1, 1, 64, 10)        # tiny: the search is quick here
  searched = zz.evaluate_zigzag(sig, acc, mapping_search=True)
  assert searched.model.endswith("-search") and searched.macs == sig.macs
  assert zz.evaluate_zigzag(sig, acc).model.endswith("-fixed")


@needs_zigzag
def test_fewer_bits_cost_less_mac_energy_in_zigzag():
  acc = load_accelerator("edge_tpu_like")
  sig = SIGS[0]
  assert zz.evaluate_zigzag(sig.with_bits(4), acc).energy_j < zz.evaluate_zigzag(sig, acc).energy_j


# --------------------------------------------------------------------------- provenance

_OPERAND = {"W": "I2", "I": "I1", "O": "O"}


def _zigzag_files(name):
  acc = load_accelerator(name)
  if acc.zigzag_hardware.startswith("zigzag:") and not zz.zigzag_available():
    pytest.skip("zigzag-dse is not installed: its shipped hardware files cannot be read")
  return acc, yaml.safe_load(open(zz.resolve_zigzag_file(acc.zigzag_hardware)))


@pytest.mark.parametrize("name", list_accelerators())
def test_description_numbers_match_its_zigzag_file(name):
  """Every number a description takes from ZigZag is the one in the ZigZag file it names."""
  acc, hw = _zigzag_files(name)
  assert acc.mac_energy_j == pytest.approx(hw["operational_array"]["unit_energy"] * 1e-12)
  mems = hw["memories"]
  for m in acc.memories:
    z = mems[m.name]
    assert m.size_bits == z["size"]
    assert sorted(_OPERAND[o] for o in m.operands) == sorted(z["operands"])
    read_bw = max(p["bandwidth_max"] for p in z["ports"] if p["type"] in ("read", "read_write"))
    write_bw = max(p["bandwidth_max"] for p in z["ports"] if p["type"] in ("write", "read_write"))
    assert (m.read_bits_per_cycle, m.write_bits_per_cycle) == (read_bw, write_bw)
    assert m.read_j_per_bit * read_bw == pytest.approx(z["r_cost"] * 1e-12)
    assert m.write_j_per_bit * write_bw == pytest.approx(z["w_cost"] * 1e-12)
    shared = any(p["type"] == "read_write" for p in z["ports"])
    assert m.ports == ("shared" if shared else "separate")
    served = [acc.spatial_unrolling[int(d[1:]) - 1][0] for d in z["served_dimensions"]
              if int(d[1:]) - 1 < len(acc.spatial_unrolling)]
    assert sorted(m.broadcast_dims) == sorted(served)
  dram = mems["dram"]
  assert acc.dram.read_j_per_bit * acc.dram.read_bits_per_cycle == pytest.approx(
      dram["r_cost"] * 1e-12)
  assert acc.dram.write_j_per_bit * acc.dram.write_bits_per_cycle == pytest.approx(
      dram["w_cost"] * 1e-12)
  assert set(mems) == {m.name for m in acc.memories} | {"dram"}


@pytest.mark.parametrize("name", list_accelerators())
def test_unrolling_matches_zigzag_mapping(name):
  acc, _ = _zigzag_files(name)
  mapping = yaml.safe_load(open(zz.resolve_zigzag_file(acc.zigzag_mapping)))
  default = next(m for m in mapping if m["name"] == "default")["spatial_mapping"]
  unrolled = [tuple(entry.split(", ")) for dim in sorted(default) for entry in default[dim]]
  assert [(d, int(n)) for d, n in unrolled] == list(acc.spatial_unrolling)
  lanes = {int(entry.split(", ")[1]) for m in mapping if m["name"] in ("Add", "Pooling")
           for entry in m["spatial_mapping"]["D1"]}
  if name != "quad_core_edge_tpu_like":   # its vector unit is Stream's SIMD core
    assert lanes == {acc.vector_lanes}
  assert dataclasses.is_dataclass(acc)
