"""Analytic roofline cost model (``analytic-2``): one op on one core, from its shape alone.

Compute. The op is the loop nest ``K x C x G x OY x OX x FY x FX`` (``K``, ``C``
per group). The MAC array unrolls some of these loops in space
(``mac_array.spatial_unrolling``, e.g. ``{K: 8, C: 8, OX: 4, OY: 4}``); every
other loop, and every remainder, runs in time::

    compute_cycles = ceil( prod_d ceil(L_d / U_d) * cycle_factor(wb, ab) )

so a layer smaller than the array along an unrolled dimension wastes PEs, and a
depthwise conv (``K = C = 1`` per group, ``G = channels``) only uses the
``OX``/``OY`` part of an array that unrolls ``K``/``C``: the array is used poorly,
as on real output-channel x input-channel arrays. ``cycle_factor`` is the bit
width rule of ``dnas_ee.hw.models.bit_scaling``.

Memory (``operand_homes``; ZigZag's LUT rows follow the same rule). The op runs
inside a network inference, layer after layer:

- activations (inputs ``I``, outputs ``O``) live in the outermost on-chip memory
  that holds them if they fit there (capacity shared by the operands of that
  memory, ``I`` first, then ``O``): the previous layer left its output there and
  the next layer reads it from there; otherwise they live in DRAM;
- weights ``W`` live in DRAM and are read from it once per inference: a whole
  network's weights do not fit in the weight memories of the described
  accelerators (32 KiB on the Edge-TPU-like one; ResNet-20 has 270 k weights), so
  they are streamed layer by layer; within the layer they are never refetched.

Traffic in bits, with perfect reuse inside every level (compulsory traffic, a
lower bound):

- ``W``/``I``: read once from their home (DRAM reads also write the staging
  memory once), written once into and read once out of every lower level; the
  innermost level feeds the MACs: it is read ``macs * bits / reuse`` times, where
  ``reuse`` is the number of MACs sharing one read (the unrolled dims in the
  memory's ``broadcast_dims`` that the operand does not depend on: ``OX, OY`` for
  weights, ``K`` for inputs, ``C, FX, FY`` for outputs).
- ``O``: the innermost level reads and writes one partial sum (``wb + ab`` bits)
  per ``reuse`` MACs; the final outputs (``ab`` bits) are written once into every
  level up to their home (and DRAM if they do not fit).

Memory cycles of a level = bits / (port width x instances), reads and writes
added on a ``shared`` port and overlapped on ``separate`` ports; the slowest
level (DRAM included) gives the memory cycles. Latency is the roofline
``max(compute, memory) / clock`` (transfers overlap compute: double buffering).

Energy = ``macs x E_mac(wb, ab)`` (``bit_scaling.mac_energy_scale``) + traffic
bits x per-bit access energy of each level.

Pooling, add and global average pooling run on the vector unit: ``ops`` element
operations (``k*k`` per output for pools, one per output for add, one per input
for gap) take ``ceil(ops / lanes)`` cycles and ``ops x E_vec(ab)`` joules; their
inputs are read from and outputs written to their home level only.

Example:
  >>> from dnas_ee.hw.accelerators.load import load_accelerator
  >>> from dnas_ee.space.signature import OpSignature
  >>> cost = evaluate_analytic(OpSignature("conv", 8, 8, 16, 32, kernel=3),
  ...                          load_accelerator("edge_tpu_like"))
  >>> cost.macs, cost.model
  (294912, 'analytic-2')
"""
from __future__ import annotations

import collections
import dataclasses
import math

from dnas_ee.hw.accelerators.description import Accelerator, MemoryLevel
from dnas_ee.hw.models.bit_scaling import (check_supported_bits, cycle_factor, mac_energy_scale,
                                           psum_bits, vector_energy_scale)
from dnas_ee.hw.models.op_cost import OpCost
from dnas_ee.space.signature import WEIGHTED_OPS, OpSignature

# analytic-1 kept weights on chip when they fitted (no DRAM traffic at all for most CIFAR
# layers); analytic-2 streams them from DRAM once per inference, as the ZigZag rows do.
MODEL = "analytic-2"
DRAM = "dram"

# Loop dimensions that an operand does not depend on: MACs along them share one read.
IRRELEVANT_DIMS = {"W": ("OX", "OY"), "I": ("K",), "O": ("C", "FX", "FY")}
# Activations claim the on-chip capacity, inputs first; weights are streamed from DRAM.
RESIDENCY_ORDER = ("I", "O")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AnalyticBreakdown:
  """Everything ``evaluate_analytic`` computed, for tests and inspection.

  Attributes:
    compute_cycles: array (or vector-unit) cycles.
    memory_cycles: ``{level name: cycles}`` (``dram`` included).
    reads_bits, writes_bits: ``{level name: bits}``.
    home: ``{operand: level name or 'dram'}``.
    compute_energy_j: MAC (or vector-op) energy.
    memory_energy_j: ``{level name: joules}``.
  """
  compute_cycles: float
  memory_cycles: dict[str, float]
  reads_bits: dict[str, float]
  writes_bits: dict[str, float]
  home: dict[str, str]
  compute_energy_j: float
  memory_energy_j: dict[str, float]

  @property
  def cycles(self) -> float:
    return max([self.compute_cycles, *self.memory_cycles.values()])

  @property
  def energy_j(self) -> float:
    return self.compute_energy_j + sum(self.memory_energy_j.values())


def loop_sizes(sig: OpSignature) -> dict[str, int]:
  """The op's loop nest (per-group ``K``, ``C``)."""
  return {"K": sig.cout // sig.groups, "C": sig.cin // sig.groups, "G": sig.groups,
          "OX": sig.w_out, "OY": sig.h_out, "FX": sig.kernel, "FY": sig.kernel}


def compute_cycles(sig: OpSignature, acc: Accelerator) -> int:
  """Array cycles: temporal iterations left after the spatial unrolling, times the bit factor."""
  unroll = acc.unrolling
  iterations = math.prod(math.ceil(n / unroll.get(d, 1)) for d, n in loop_sizes(sig).items())
  factor = cycle_factor(sig.w_bits, sig.a_bits, reference_bits=acc.reference_bits,
                        bit_packing=acc.bit_packing)
  return math.ceil(iterations * factor)


def spatial_reuse(sig: OpSignature, acc: Accelerator, memory: MemoryLevel, operand: str) -> int:
  """MACs fed by one read of ``memory`` for ``operand`` (used unroll along shared, irrelevant dims)."""
  sizes, unroll = loop_sizes(sig), acc.unrolling
  return math.prod(min(unroll[d], sizes[d]) for d in memory.broadcast_dims
                   if d in IRRELEVANT_DIMS[operand])


def _operand_bits(sig: OpSignature) -> dict[str, int]:
  """Compulsory bits of each operand (``add`` reads two inputs)."""
  inputs = sig.input_elements * (2 if sig.op == "add" else 1)
  return {"W": sig.weight_count * sig.w_bits, "I": inputs * sig.a_bits,
          "O": sig.output_elements * sig.a_bits}


def operand_homes(sig: OpSignature, acc: Accelerator) -> dict[str, str]:
  """Where each operand of ``sig`` lives during an inference: a memory name or ``'dram'``.

  Activations (``I`` then ``O``) in their outermost on-chip memory if they fit
  there, else DRAM; weights always in DRAM (read once per inference, see the
  module doc). The ZigZag model uses the same homes.
  """
  return _homes(acc, _operand_bits(sig))


def _homes(acc: Accelerator, bits: dict[str, int]) -> dict[str, str]:
  """Home of each operand (``operand_homes``)."""
  used: collections.Counter = collections.Counter()
  home = {"W": DRAM}
  for operand in RESIDENCY_ORDER:
    top = acc.memory_chain(operand)[-1]
    capacity = top.size_bits * acc.instances(top)
    if used[top.name] + bits[operand] <= capacity:
      used[top.name] += bits[operand]
      home[operand] = top.name
    else:
      home[operand] = DRAM
  return home


def _mac_traffic(sig: OpSignature, acc: Accelerator, bits: dict[str, int], home: dict[str, str],
                 reads: collections.Counter, writes: collections.Counter) -> None:
  """Traffic of a weighted op through each operand's memory chain (see module doc)."""
  for operand in ("W", "I"):
    chain = acc.memory_chain(operand)
    c = bits[operand]
    if home[operand] == DRAM:
      reads[DRAM] += c
      writes[chain[-1].name] += c
    width = sig.w_bits if operand == "W" else sig.a_bits
    feed = sig.macs * width / spatial_reuse(sig, acc, chain[0], operand)
    reads[chain[0].name] += max(c, feed)
    for level in chain[1:]:
      reads[level.name] += c
    for level in chain[:-1]:
      writes[level.name] += c
  chain = acc.memory_chain("O")
  c = bits["O"]
  updates = sig.macs / spatial_reuse(sig, acc, chain[0], "O")
  psum = updates * psum_bits(sig.w_bits, sig.a_bits)
  reads[chain[0].name] += psum
  writes[chain[0].name] += max(c, psum)
  for level in chain[1:]:
    writes[level.name] += c
  for level in chain[:-1]:
    reads[level.name] += c
  if home["O"] == DRAM:
    reads[chain[-1].name] += c
    writes[DRAM] += c


def _vector_traffic(acc: Accelerator, bits: dict[str, int], home: dict[str, str],
                    reads: collections.Counter, writes: collections.Counter) -> None:
  """Pool/add/gap: inputs read from, outputs written to their home (via staging if DRAM)."""
  top_i, top_o = acc.memory_chain("I")[-1].name, acc.memory_chain("O")[-1].name
  reads[top_i] += bits["I"]
  writes[top_o] += bits["O"]
  if home["I"] == DRAM:
    reads[DRAM] += bits["I"]
    writes[top_i] += bits["I"]
  if home["O"] == DRAM:
    reads[top_o] += bits["O"]
    writes[DRAM] += bits["O"]


def vector_ops(sig: OpSignature) -> int:
  """Element operations of a pool/add/gap op."""
  if sig.op in ("maxpool", "avgpool"):
    return sig.output_elements * sig.kernel**2
  if sig.op == "add":
    return sig.output_elements
  if sig.op == "gap":
    return sig.input_elements
  raise ValueError(f"op type {sig.op!r} is not a vector op")


def _level_cycles(reads: float, writes: float, read_bw: float, write_bw: float, ports: str) -> float:
  r, w = reads / read_bw, writes / write_bw
  return r + w if ports == "shared" else max(r, w)


def analytic_breakdown(sig: OpSignature, acc: Accelerator) -> AnalyticBreakdown:
  """Cycles, traffic and energy of ``sig`` on one core of ``acc``, level by level."""
  check_supported_bits(sig, acc)
  bits = _operand_bits(sig)
  home = _homes(acc, bits)
  reads: collections.Counter = collections.Counter()
  writes: collections.Counter = collections.Counter()
  if sig.op in WEIGHTED_OPS:
    _mac_traffic(sig, acc, bits, home, reads, writes)
    compute = float(compute_cycles(sig, acc))
    compute_energy = sig.macs * acc.mac_energy_j * mac_energy_scale(
        sig.w_bits, sig.a_bits, reference_bits=acc.reference_bits,
        multiplier_fraction=acc.multiplier_energy_fraction)
  else:
    _vector_traffic(acc, bits, home, reads, writes)
    ops = vector_ops(sig)
    compute = float(math.ceil(ops / acc.vector_lanes))
    compute_energy = ops * acc.vector_op_energy_j * vector_energy_scale(
        sig.a_bits, reference_bits=acc.reference_bits)
  memory_cycles, memory_energy = {}, {}
  for m in acc.memories:
    n = acc.instances(m)
    memory_cycles[m.name] = _level_cycles(reads[m.name], writes[m.name], m.read_bits_per_cycle * n,
                                          m.write_bits_per_cycle * n, m.ports)
    memory_energy[m.name] = reads[m.name] * m.read_j_per_bit + writes[m.name] * m.write_j_per_bit
  d = acc.dram
  memory_cycles[DRAM] = _level_cycles(reads[DRAM], writes[DRAM], d.read_bits_per_cycle,
                                      d.write_bits_per_cycle, d.ports)
  memory_energy[DRAM] = reads[DRAM] * d.read_j_per_bit + writes[DRAM] * d.write_j_per_bit
  return AnalyticBreakdown(
      compute_cycles=compute, memory_cycles=memory_cycles, reads_bits=dict(reads),
      writes_bits=dict(writes), home=home, compute_energy_j=compute_energy,
      memory_energy_j=memory_energy)


def evaluate_analytic(sig: OpSignature, acc: Accelerator) -> OpCost:
  """Latency and energy of one op on one core of ``acc`` (roofline; see the module doc).

  Args:
    sig: the op.
    acc: a loaded accelerator description.

  Returns:
    ``OpCost`` with ``model='analytic-2'``.

  Raises:
    ValueError: the op's bit widths are not supported by ``acc``.
  """
  b = analytic_breakdown(sig, acc)
  cycles = b.cycles
  return OpCost(macs=sig.macs, cycles=cycles, latency_s=cycles / acc.clock_hz,
                energy_j=b.energy_j, model=MODEL)
