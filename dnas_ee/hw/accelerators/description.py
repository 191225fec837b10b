"""Accelerator descriptions as frozen dataclasses, every quantity in SI units.

A description says what the cost models need to know about an accelerator:
clock, MAC array (spatial unrolling and energy per MAC at a reference precision),
supported bit widths and how lower precision is executed, the on-chip memory
levels (size, bandwidth, access energy), off-chip DRAM, the vector unit used for
pooling/add, the number of cores and the link between them, and optionally the
ZigZag hardware and mapping files of the same machine.

The YAML files under ``hwmodels/accelerators/`` are validated into these classes by
``dnas_ee.hw.accelerators.schema`` and read by ``dnas_ee.hw.accelerators.load``.
"""
from __future__ import annotations

import dataclasses
import math

LOOP_DIMS = ("K", "C", "G", "OX", "OY", "FX", "FY")
OPERANDS = ("W", "I", "O")      # weights, input activations, outputs (partial sums)
PORT_KINDS = ("separate", "shared")


class AcceleratorError(ValueError):
  """An accelerator description that cannot be used; the message names file, key and fix."""

  def __init__(self, path: object, key: str, problem: str, fix: str):
    self.path, self.key, self.problem, self.fix = str(path), key, problem, fix
    where = f"{self.path}: key '{key}'" if key else str(self.path)
    super().__init__(f"{where}: {problem}. Fix: {fix}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MemoryLevel:
  """One on-chip memory (one instance; ``instances`` of them sit beside the array).

  Attributes:
    name: the memory's name in the description (ZigZag's name).
    size_bits: capacity of one instance.
    operands: which operands it holds: ``W`` weights, ``I`` inputs, ``O`` outputs.
    broadcast_dims: array dimensions (named by the loop dimension unrolled on them)
      across which one instance is shared: one read feeds every MAC along them
      (ZigZag's ``served_dimensions``). Empty: one instance per MAC.
    read_bits_per_cycle, write_bits_per_cycle: port width of one instance.
    read_j_per_bit, write_j_per_bit: access energy per bit.
    ports: ``separate`` read and write ports (they work in parallel) or one
      ``shared`` read-write port (reads and writes take turns).
  """
  name: str
  size_bits: int
  operands: tuple[str, ...]
  broadcast_dims: tuple[str, ...]
  read_bits_per_cycle: float
  write_bits_per_cycle: float
  read_j_per_bit: float
  write_j_per_bit: float
  ports: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class DramSpec:
  """Off-chip DRAM, the home of any operand that fits no on-chip memory."""
  read_bits_per_cycle: float
  write_bits_per_cycle: float
  read_j_per_bit: float
  write_j_per_bit: float
  ports: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class LinkSpec:
  """Core-to-core link of a multi-core accelerator (one direction, one hop)."""
  bits_per_cycle: float
  j_per_bit: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class Accelerator:
  """A validated accelerator description, every quantity in SI units.

  Attributes:
    name: file stem and ``name:`` of the description.
    description: one-paragraph text.
    sources: the files the numbers come from.
    clock_hz: clock frequency.
    reference_bits: operand precision at which ``mac_energy_j`` holds.
    supported_bits: operand bit widths the accelerator can run.
    bit_packing: whether a PE packs several narrow operands per cycle (BitFusion).
    multiplier_energy_fraction: share of ``mac_energy_j`` spent in the multiplier.
    spatial_unrolling: ``((loop_dim, size), ...)``: the MAC array as the loop
      dimensions it unrolls (the ZigZag mapping's spatial mapping).
    mac_energy_j: energy of one MAC at ``reference_bits``.
    vector_lanes: element operations per cycle of the vector (pool/add) unit.
    vector_op_energy_j: energy of one element operation at ``reference_bits``.
    memories: on-chip memories, innermost first.
    dram: off-chip memory.
    num_cores: identical compute cores (each as described above).
    mesh: ``(rows, cols)`` of the cores' 2D mesh.
    link: core-to-core link (``None`` for one core).
    zigzag_hardware, zigzag_mapping: resolved ZigZag files (``zigzag:`` refers
      to the installed package), or ``None``.
    path: the file it was read from.
    description_hash: sha256 of the canonical normalized content (free text
      excluded), stored in LUTs to detect stale ones.
  """
  name: str
  description: str
  sources: tuple[str, ...]
  clock_hz: float
  reference_bits: int
  supported_bits: tuple[int, ...]
  bit_packing: bool
  multiplier_energy_fraction: float
  spatial_unrolling: tuple[tuple[str, int], ...]
  mac_energy_j: float
  vector_lanes: int
  vector_op_energy_j: float
  memories: tuple[MemoryLevel, ...]
  dram: DramSpec
  num_cores: int
  mesh: tuple[int, int]
  link: LinkSpec | None
  zigzag_hardware: str | None
  zigzag_mapping: str | None
  path: str
  description_hash: str

  @property
  def unrolling(self) -> dict[str, int]:
    return dict(self.spatial_unrolling)

  @property
  def array_size(self) -> int:
    """MACs per cycle of one core."""
    return math.prod(size for _, size in self.spatial_unrolling)

  @property
  def clock_period_s(self) -> float:
    return 1.0 / self.clock_hz

  @property
  def dram_read_bytes_per_s(self) -> float:
    return self.dram.read_bits_per_cycle * self.clock_hz / 8.0

  def memory_chain(self, operand: str) -> tuple[MemoryLevel, ...]:
    """The on-chip memories holding ``operand``, innermost first."""
    return tuple(m for m in self.memories if operand in m.operands)

  def instances(self, memory: MemoryLevel) -> int:
    """How many instances of ``memory`` the array has (one per un-shared group of MACs)."""
    shared = math.prod(self.unrolling[d] for d in memory.broadcast_dims)
    return self.array_size // shared
