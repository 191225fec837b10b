"""How operand bit widths change MAC energy, cycles and traffic, relative to the reference.

Accelerator descriptions (and ZigZag, on its digital arrays) give one energy per
MAC, ``E_ref``, at a reference precision ``r`` (8 bits for every shipped
accelerator). dnas-ee needs the cost at other widths, so one model is applied on
top of both cost models (analytic and ZigZag):

MAC energy (``mac_energy_scale``)::

    E(wb, ab) = E_ref * [ m * (wb * ab) / r**2  +  (1 - m) * (wb + ab) / (2 r) ]

The first term is the multiplier, whose energy grows with the product of the
operand widths (an array multiplier has ``wb x ab`` partial-product cells); the
second is the adder/accumulator, linear in the width of the product it adds.
``m`` is the multiplier's share of ``E_ref`` (``precision.multiplier_energy_fraction``
in the description). Source: M. Horowitz, "Computing's energy problem (and what
we can do about it)", ISSCC 2014, 45 nm: 8-bit int multiply 0.2 pJ vs 32-bit
3.1 pJ (15.5x for 4x the width, i.e. ~quadratic), 8-bit add 0.03 pJ vs 32-bit
0.1 pJ (~linear). An 8x8-bit multiply with a 32-bit accumulate gives
``m = 0.2 / (0.2 + 0.1) = 0.667``, the value in every shipped description. The
same quadratic-multiplier / linear-adder split underlies the bit-flexible
designs Stripes (Judd et al., MICRO 2016) and Bit Fusion (Sharma et al., ISCA 2018).

Vector (pool/add) operations are additions and comparisons, linear in the
activation width: ``E_vec(ab) = E_vec_ref * ab / r`` (``vector_energy_scale``).

Memory traffic scales with bits directly: a tensor of ``n`` elements at ``b``
bits moves ``n * b`` bits (no padding to bytes). Partial sums are held at the
product width ``wb + ab`` (16 bits at int8, as in ZigZag's examples).

Cycles (``cycle_factor``): with ``bit_packing: false`` (every shipped accelerator:
fixed int8 datapaths) an operand narrower than ``r`` still occupies a whole PE for
a cycle, so cycles do not change; an operand wider than ``r`` takes
``ceil(b / r)`` passes (bit-serial composition). With ``bit_packing: true`` a PE
packs ``r // b`` narrow operands per side (Bit Fusion: one 8x8, four 4x4 or
sixteen 2x2 products per fused PE per cycle), dividing the array's cycles by
``(r // wb) * (r // ab)``.
"""
from __future__ import annotations

import math
from fractions import Fraction


def mac_energy_scale(w_bits: int, a_bits: int, *, reference_bits: int,
                     multiplier_fraction: float) -> float:
  """Factor on the reference MAC energy at ``w_bits x a_bits`` (1.0 at the reference).

  Example:
    >>> round(mac_energy_scale(4, 4, reference_bits=8, multiplier_fraction=0.667), 3)
    0.333
  """
  r = float(reference_bits)
  m = multiplier_fraction
  return m * (w_bits * a_bits) / (r * r) + (1.0 - m) * (w_bits + a_bits) / (2.0 * r)


def vector_energy_scale(a_bits: int, *, reference_bits: int) -> float:
  """Factor on the reference vector-op energy (adders/comparators: linear in width)."""
  return a_bits / float(reference_bits)


def psum_bits(w_bits: int, a_bits: int) -> int:
  """Width at which partial sums are stored: the product width (16 at int8)."""
  return w_bits + a_bits


def _operand_cycle_factor(bits: int, reference_bits: int, bit_packing: bool) -> Fraction:
  if bits > reference_bits:
    return Fraction(math.ceil(bits / reference_bits))
  if bit_packing:
    return Fraction(1, reference_bits // bits)
  return Fraction(1)


def cycle_factor(w_bits: int, a_bits: int, *, reference_bits: int, bit_packing: bool) -> Fraction:
  """Exact factor on the array's compute cycles at ``w_bits x a_bits`` (1 at the reference).

  Example:
    >>> cycle_factor(4, 2, reference_bits=8, bit_packing=True)
    Fraction(1, 8)
    >>> cycle_factor(16, 4, reference_bits=8, bit_packing=False)
    Fraction(2, 1)
  """
  return (_operand_cycle_factor(w_bits, reference_bits, bit_packing)
          * _operand_cycle_factor(a_bits, reference_bits, bit_packing))


def check_supported_bits(sig, acc) -> None:
  """Raises ``ValueError`` if the op's bit widths are not among the accelerator's."""
  widths = {"a_bits": sig.a_bits}
  if sig.macs:
    widths["w_bits"] = sig.w_bits
  for name, bits in widths.items():
    if bits not in acc.supported_bits:
      raise ValueError(
          f"op {sig.key()} has {name}={bits}, which accelerator {acc.name!r} does not support "
          f"(precision.supported_bits={list(acc.supported_bits)}); restrict the search space's "
          f"bit widths to those, or add {bits} to the description if the hardware runs it")
