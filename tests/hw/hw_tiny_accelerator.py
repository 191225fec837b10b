"""The tiny, hand-checkable accelerator description of the hardware tests.

A uniquely named module (not ``conftest``) so that ``from hw_tiny_accelerator import ...``
cannot pick up another directory's conftest.
"""
from __future__ import annotations

from pathlib import Path

# Numbers chosen for hand computation, not realism. Chains: W rf -> sram, I sram, O acc -> sram.
TINY_YAML = """\
format: dnas-ee-accelerator
version: 1
name: tiny
description: a hand-checkable test accelerator
source:
  derived_from: ["written by hand for tests/hw"]
clock: 1 GHz
precision:
  reference_bits: 8
  supported_bits: [2, 4, 8, 16]
  bit_packing: false
  multiplier_energy_fraction: 0.5
mac_array:
  spatial_unrolling: {K: 4, C: 2}
  mac_energy: 1 pJ
vector_unit:
  lanes: 4
  op_energy: 0.5 pJ
memories:
  rf:
    size: 64 bit
    operands: [W]
    broadcast_dims: []
    read_bandwidth: 8 bit/cycle
    write_bandwidth: 8 bit/cycle
    read_energy: 0.1 pJ/bit
    write_energy: 0.2 pJ/bit
    ports: separate
  acc:
    size: 32 bit
    operands: [O]
    broadcast_dims: [C]
    read_bandwidth: 16 bit/cycle
    write_bandwidth: 16 bit/cycle
    read_energy: 0.05 pJ/bit
    write_energy: 0.05 pJ/bit
    ports: separate
  sram:
    size: 1 KiB
    operands: [I, W, O]
    broadcast_dims: [K, C]
    read_bandwidth: 64 bit/cycle
    write_bandwidth: 64 bit/cycle
    read_energy: 64 pJ/access
    write_energy: 2 pJ/bit
    ports: shared
dram:
  read_bandwidth: 16 bit/cycle
  write_bandwidth: 2 GB/s
  read_energy: 10 pJ/bit
  write_energy: 20 pJ/bit
  ports: shared
cores:
  count: 1
  mesh: [1, 1]
"""


def write_tiny(folder: Path, text: str = TINY_YAML, name: str = "tiny") -> Path:
  path = Path(folder) / f"{name}.yaml"
  path.write_text(text if name == "tiny" else text.replace("name: tiny", f"name: {name}"))
  return path
