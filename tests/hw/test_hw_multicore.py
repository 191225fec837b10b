"""Core-to-core transfer cost on the quad-core accelerator."""
from __future__ import annotations

import pytest

from dnas_ee.hw.accelerators.load import load_accelerator
from dnas_ee.hw.models.core_transfer import max_hops, transfer_cost


def test_transfer_cost_hand_computed():
  acc = load_accelerator("quad_core_edge_tpu_like")
  # 16x16x32 int8 feature map = 8192 bytes = 65536 bits over a 32 bit/cycle link: 2048 cycles.
  latency, energy = transfer_cost(acc, 16 * 16 * 32)
  assert latency == pytest.approx(2048 / 500e6)
  sram = acc.memories[-1]                          # read at the source, written at the destination
  per_bit = (416.16 / 2048 + 378.4 / 2048) * 1e-12   # the link itself: 0 pJ/bit (Stream)
  assert sram.read_j_per_bit + sram.write_j_per_bit == pytest.approx(per_bit)
  assert energy == pytest.approx(65536 * per_bit)


def test_hops_and_sizes():
  acc = load_accelerator("quad_core_edge_tpu_like")
  assert max_hops(acc) == 2
  one, two = transfer_cost(acc, 100, hops=1), transfer_cost(acc, 100, hops=2)
  assert two[0] == pytest.approx(one[0] + 1 / acc.clock_hz)   # pipelined: one more cycle
  assert two[1] == one[1]                                     # zero-energy link
  assert transfer_cost(acc, 0) == (0.0, 0.0)
  assert transfer_cost(acc, 2.5)[0] == pytest.approx(1 / acc.clock_hz)  # 20 bits: 1 cycle
  assert transfer_cost(acc, 4096)[1] < transfer_cost(acc, 8192)[1]
  for bad in (-1, float("nan"), float("inf"), "8"):
    with pytest.raises(ValueError, match="num_bytes"):
      transfer_cost(acc, bad)
  with pytest.raises(ValueError, match="1 to 2 hops"):
    transfer_cost(acc, 10, hops=3)


def test_link_energy_is_charged_per_hop(tiny):
  import dataclasses
  from dnas_ee.hw.accelerators.description import LinkSpec
  acc = dataclasses.replace(tiny, num_cores=2, mesh=(1, 2),
                            link=LinkSpec(bits_per_cycle=8.0, j_per_bit=1e-12))
  latency, energy = transfer_cost(acc, 1)           # 8 bits: 1 cycle at 1 GHz
  assert latency == pytest.approx(1e-9)
  # link 1 pJ/bit + sram read 1 pJ/bit + sram write 2 pJ/bit
  assert energy == pytest.approx(8 * 4e-12)


def test_single_core_has_no_transfer():
  with pytest.raises(ValueError, match="no core-to-core link"):
    transfer_cost(load_accelerator("edge_tpu_like"), 1024)
