"""Analytic model: hand-computed costs on the tiny accelerator, bit-width monotonicity."""
from __future__ import annotations

import dataclasses

import hypothesis.strategies as st
import pytest
from hw_tiny_accelerator import TINY_YAML, write_tiny
from hypothesis import given, settings

from dnas_ee.hw.accelerators.load import list_accelerators, load_accelerator
from dnas_ee.hw.models.analytic import analytic_breakdown, compute_cycles, evaluate_analytic
from dnas_ee.hw.models.bit_scaling import cycle_factor, mac_energy_scale
from dnas_ee.space.signature import OpSignature

PJ = 1e-12


def test_conv_hand_computed(tiny):
  # 4x4x2 -> 4x4x4, 3x3: loops K4 C2 OX4 OY4 FX3 FY3 on a K4 x C2 array: 144 cycles, 1152 MACs.
  sig = OpSignature("conv", 4, 4, 2, 4, kernel=3)
  b = analytic_breakdown(sig, tiny)
  assert b.compute_cycles == 144
  # Activations (256 + 512 bits) on chip; weights (576 bits) streamed from DRAM once.
  assert b.home == {"I": "sram", "O": "sram", "W": "dram"}
  # W: rf read once per MAC (no sharing): 1152 * 8; filled once (576 bits) from sram.
  assert b.reads_bits["rf"] == 9216 and b.writes_bits["rf"] == 576
  # O: acc shared along C (2 MACs per partial sum): 576 updates x 16-bit psum, read + write,
  # plus reading the 512 final bits out to sram.
  assert b.reads_bits["acc"] == 9216 + 512 and b.writes_bits["acc"] == 9216
  # sram: W 576 + I (1152 * 8 / 4, shared along K) = 2880 read; O 512 + W 576 (staged) written.
  assert b.reads_bits["sram"] == 2880 and b.writes_bits["sram"] == 512 + 576
  assert b.reads_bits["dram"] == 576
  assert b.memory_cycles == {"rf": 144, "acc": 152, "sram": 45 + 17, "dram": 36}
  cost = evaluate_analytic(sig, tiny)
  assert cost.macs == 1152 and cost.cycles == 152 and cost.model == "analytic-2"
  assert cost.latency_s == pytest.approx(152e-9)
  # 1152 MAC + rf (921.6 + 115.2) + acc 947.2 + sram (2880 * 1 + 1088 * 2) + dram 576 * 10 pJ
  assert cost.energy_j == pytest.approx((7040 + 1152 + 5760) * PJ)


def test_dense_spilling_to_dram_hand_computed(tiny):
  # 64 -> 32 dense: 16384 weight bits do not fit the 8192-bit sram after I and O: DRAM.
  sig = OpSignature("dense", 1, 1, 64, 32)
  b = analytic_breakdown(sig, tiny)
  assert b.home == {"I": "sram", "O": "sram", "W": "dram"}
  assert b.compute_cycles == 8 * 32
  assert b.reads_bits["dram"] == 16384 and b.writes_bits.get("dram", 0) == 0
  assert b.reads_bits["sram"] == 16384 + 4096 and b.writes_bits["sram"] == 16384 + 256
  assert b.memory_cycles["dram"] == 1024       # 16384 bits / 16 bit/cycle: DRAM-bound
  assert b.memory_cycles["sram"] == 580        # shared port: (20480 + 16640) / 64
  cost = evaluate_analytic(sig, tiny)
  assert cost.cycles == 1024
  assert cost.energy_j == pytest.approx(226214.4 * PJ)


def test_maxpool_on_vector_unit_hand_computed(tiny):
  sig = OpSignature("maxpool", 4, 4, 2, 2, kernel=2, stride=2)   # 8 outputs x 4 compares
  b = analytic_breakdown(sig, tiny)
  assert b.compute_cycles == 8                                  # 32 ops / 4 lanes
  assert b.reads_bits["sram"] == 256 and b.writes_bits["sram"] == 64
  cost = evaluate_analytic(sig, tiny)
  assert cost.macs == 0 and cost.cycles == 8
  assert cost.energy_j == pytest.approx((32 * 0.5 + 256 * 1 + 64 * 2) * PJ)


def test_lower_bits_scale_mac_energy(tiny):
  sig8 = OpSignature("conv", 4, 4, 2, 4, kernel=3)
  sig4 = sig8.with_bits(4)
  b8, b4 = analytic_breakdown(sig8, tiny), analytic_breakdown(sig4, tiny)
  # Horowitz-style split at m = 0.5: 0.5 * 16/64 + 0.5 * 8/16 = 0.375
  assert b4.compute_energy_j == pytest.approx(0.375 * b8.compute_energy_j)
  assert b4.compute_cycles == b8.compute_cycles                  # no bit packing
  assert b4.reads_bits["rf"] == b8.reads_bits["rf"] / 2


def test_bit_packing_divides_cycles(tmp_path):
  acc = load_accelerator(write_tiny(tmp_path, TINY_YAML.replace("bit_packing: false",
                                                                "bit_packing: true")))
  sig = OpSignature("conv", 4, 4, 2, 4, kernel=3)
  assert compute_cycles(sig, acc) == 144
  assert compute_cycles(sig.with_bits(4), acc) == 36            # 2 x 2 packed per PE
  assert compute_cycles(dataclasses.replace(sig, w_bits=2, a_bits=4), acc) == 18
  assert compute_cycles(sig.with_bits(16), acc) == 576          # 2 x 2 passes


def test_depthwise_uses_the_array_poorly():
  acc = load_accelerator("edge_tpu_like")
  dense = OpSignature("conv", 16, 16, 64, 64, kernel=3)
  depthwise = OpSignature("conv", 16, 16, 64, 64, kernel=3, groups=64)
  util = lambda s: s.macs / (compute_cycles(s, acc) * acc.array_size)  # noqa: E731
  assert util(dense) == pytest.approx(1.0)
  assert util(depthwise) < 0.02       # only the OX x OY part of K8 x C8 x OX4 x OY4 works


def test_unsupported_bits_raise(tiny):
  with pytest.raises(ValueError, match="w_bits=3.*supported_bits"):
    evaluate_analytic(OpSignature("conv", 4, 4, 2, 4, w_bits=3), tiny)
  # pools have no weights: their w_bits is irrelevant
  evaluate_analytic(OpSignature("maxpool", 4, 4, 2, 2, kernel=2, w_bits=3), tiny)


def test_bit_scaling_formulas():
  assert mac_energy_scale(8, 8, reference_bits=8, multiplier_fraction=0.667) == pytest.approx(1)
  # Horowitz 2014, 45 nm: an 8-bit multiplier (0.2 pJ) is ~1/16 of a 32-bit one (3.1 pJ).
  mult_only = mac_energy_scale(32, 32, reference_bits=8, multiplier_fraction=1.0)
  assert mult_only == 16 and 3.1 / 0.2 == pytest.approx(mult_only, rel=0.05)
  assert mac_energy_scale(32, 32, reference_bits=8, multiplier_fraction=0.0) == 4  # adder: linear
  assert cycle_factor(8, 8, reference_bits=8, bit_packing=True) == 1
  assert cycle_factor(3, 8, reference_bits=8, bit_packing=True) == 0.5
  assert cycle_factor(16, 16, reference_bits=8, bit_packing=False) == 4


# --------------------------------------------------------------------------- monotonicity

def _accelerators():
  accs = [load_accelerator(n) for n in list_accelerators()]
  import tempfile
  from pathlib import Path
  with tempfile.TemporaryDirectory() as folder:
    for packing in ("false", "true"):
      sub = Path(folder) / packing
      sub.mkdir()
      accs.append(load_accelerator(write_tiny(
          sub, TINY_YAML.replace("bit_packing: false", f"bit_packing: {packing}"))))
  return accs


ACCELERATORS = _accelerators()


@st.composite
def signature_pairs(draw):
  """A signature and the same op at weight/activation widths no larger, both supported."""
  acc = draw(st.sampled_from(ACCELERATORS))
  op = draw(st.sampled_from(["conv", "conv", "dense", "maxpool", "avgpool", "add", "gap"]))
  h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
  cin = draw(st.integers(1, 256))
  kernel = draw(st.sampled_from([1, 3, 5, 7])) if op in ("conv", "maxpool", "avgpool") else 1
  stride = draw(st.sampled_from([1, 2])) if op in ("conv", "maxpool", "avgpool") else 1
  if op in ("conv", "dense"):
    depthwise = op == "conv" and draw(st.booleans())
    cout = cin if depthwise else draw(st.integers(1, 256))
    groups = cin if depthwise else 1
  else:
    cout, groups = cin, 1
  bits = acc.supported_bits
  wb, ab = draw(st.sampled_from(bits)), draw(st.sampled_from(bits))
  wb2 = draw(st.sampled_from([b for b in bits if b <= wb]))
  ab2 = draw(st.sampled_from([b for b in bits if b <= ab]))
  sig = OpSignature(op, h, w, cin, cout, kernel=kernel, stride=stride, groups=groups,
                    w_bits=wb, a_bits=ab)
  return acc, sig, dataclasses.replace(sig, w_bits=wb2, a_bits=ab2)


@settings(max_examples=400, deadline=None)
@given(signature_pairs())
def test_fewer_bits_never_cost_more(pair):
  acc, sig, fewer = pair
  high, low = evaluate_analytic(sig, acc), evaluate_analytic(fewer, acc)
  assert low.energy_j <= high.energy_j * (1 + 1e-12)
  assert low.cycles <= high.cycles
  assert low.latency_s <= high.latency_s * (1 + 1e-12)
  assert low.macs == high.macs
  assert high.energy_j > 0 and high.cycles >= 1
