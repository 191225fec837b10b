"""Core-to-core transfers on a multi-core accelerator: one feature map, and the table of a space.

(The expected latency of a whole early-exit network on several cores is
``dnas_ee.cost.multicore``; it takes the arrays ``transfer_tables`` builds here.)

On a multi-core accelerator (Reference A: Stream's quad-core Edge-TPU-like
system) an exit branch can run on another core than the backbone. Its input
feature map then crosses the core-to-core link: read from the activation memory
of the backbone's core, sent over ``hops`` links of the 2D mesh, written into the
activation memory of the branch's core. With ``B`` = ``8 * num_bytes`` bits::

    cycles   = ceil(B / link_bandwidth) + (hops - 1)
    latency  = cycles / clock
    energy   = B * (hops * link_energy_per_bit + read_energy_per_bit(src)
                    + write_energy_per_bit(dst))

The links are pipelined (wormhole routing): every extra hop adds one cycle, not
another ``B / bandwidth``. ``src``/``dst`` is the outermost on-chip memory that
holds output/input activations (identical cores, so the same memory on both).
Stream's ``CommunicationLink`` charges ``unit_energy_cost`` per bit for the link
and counts the memory accesses at both ends separately, exactly as here; its
quad-core example sets the link energy to 0 pJ/bit, so the transfer energy is
that of the two memory accesses. Contention with other traffic is not modelled.

Example:
  >>> from dnas_ee.hw.accelerators.load import load_accelerator
  >>> latency_s, energy_j = transfer_cost(load_accelerator("quad_core_edge_tpu_like"), 1024)
  >>> round(latency_s * 1e9)  # 8192 bits / 32 bit/cycle = 256 cycles at 500 MHz
  512
"""
from __future__ import annotations

import math
import os

import numpy as np

from dnas_ee.hw.accelerators.description import Accelerator
from dnas_ee.hw.accelerators.load import load_accelerator


def max_hops(acc: Accelerator) -> int:
  """Longest shortest path between two cores of the mesh (Manhattan distance)."""
  rows, cols = acc.mesh
  return (rows - 1) + (cols - 1)


def transfer_cost(acc: Accelerator, num_bytes: float, *, hops: int = 1) -> tuple[float, float]:
  """Latency (s) and energy (J) of moving ``num_bytes`` between two cores.

  Args:
    acc: a multi-core accelerator description.
    num_bytes: size of the feature map at its bit width (``elements * bits / 8``).
    hops: mesh links crossed (1 for neighbouring cores; 2 across the diagonal of a 2x2 mesh).

  Returns:
    ``(latency_s, energy_j)``; ``(0.0, 0.0)`` for zero bytes.

  Raises:
    ValueError: one-core accelerator, negative or non-finite size, impossible hop count.
  """
  if acc.num_cores < 2 or acc.link is None:
    raise ValueError(f"accelerator {acc.name!r} has {acc.num_cores} core(s) and no core-to-core "
                     "link: there is nothing to transfer between; place every exit on the "
                     "backbone's core, or pick a multi-core accelerator such as "
                     "'quad_core_edge_tpu_like'")
  if isinstance(num_bytes, bool) or not isinstance(num_bytes, (int, float)) \
      or not math.isfinite(num_bytes) or num_bytes < 0:
    raise ValueError(f"num_bytes={num_bytes!r} must be a finite number >= 0")
  if isinstance(hops, bool) or not isinstance(hops, int) or not 1 <= hops <= max_hops(acc):
    raise ValueError(f"hops={hops!r}: the {acc.mesh[0]}x{acc.mesh[1]} mesh of {acc.name!r} allows "
                     f"1 to {max_hops(acc)} hops")
  if num_bytes == 0:
    return 0.0, 0.0
  bits = 8.0 * num_bytes
  cycles = math.ceil(bits / acc.link.bits_per_cycle) + (hops - 1)
  src = acc.memory_chain("O")[-1]
  dst = acc.memory_chain("I")[-1]
  energy = bits * (hops * acc.link.j_per_bit + src.read_j_per_bit + dst.write_j_per_bit)
  return cycles / acc.clock_hz, energy


def transfer_tables(space, accelerator: Accelerator | str | os.PathLike, *,
                    hops: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """Host side: ``(latency_s, energy_j)``, each [P, nb], of sending each exit's input.

  Exit i reads block ``p_i``'s output (``in_res x in_res x base_width``), quantized at
  the branch's bit width (the branch quantizes its input anyway, so the sender does
  it first): candidate ``b`` of ``space.branch_bits[i]`` moves ``res^2 C0 b / 8`` bytes.
  The arrays feed ``dnas_ee.cost.multicore`` (``expected_transfer``).

  Args:
    space: a ``SearchSpace``.
    accelerator: a multi-core ``Accelerator`` (or a shipped name / YAML path).
    hops: mesh links crossed (1: a neighbouring core).
  """
  acc = accelerator if isinstance(accelerator, Accelerator) else load_accelerator(accelerator)
  p, nb = len(space.branches), space.num_bits
  latency, energy = np.zeros((p, nb)), np.zeros((p, nb))
  for i, (branch, bits) in enumerate(zip(space.branches, space.branch_bits)):
    for b, width in enumerate(bits):
      num_bytes = branch.in_res * branch.in_res * branch.base_width * width / 8.0
      latency[i, b], energy[i, b] = transfer_cost(acc, num_bytes, hops=hops)
  return latency, energy


__all__ = ["max_hops", "transfer_cost", "transfer_tables"]
