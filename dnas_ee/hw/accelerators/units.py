"""Quantities with units, as written in accelerator descriptions.

Every physical number in an accelerator file is a string ``"<number> <unit>"``,
e.g. ``"500 MHz"``, ``"0.04 pJ"``, ``"2 MiB"``, ``"2048 bit/cycle"``. A bare
number is refused: the unit is what tells ``0.04`` (pJ) from ``0.04`` (nJ).
Values are converted to SI (Hz, J, bits, bits per cycle or bytes per second).

Sizes use binary prefixes (``KiB``, ``MiB``) because ZigZag's "2MB" SRAM is
16777216 bits = 2 MiB; the ambiguous ``kB``/``MB`` are refused for sizes.
Rates in bytes per second use decimal prefixes (``GB/s`` = 1e9 B/s), as DRAM
data sheets do.
"""
from __future__ import annotations

import math
import re

_NUMBER_RE = re.compile(
    r"^\s*(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>\S+)\s*$")

# kind -> unit -> factor to the SI base of that kind.
UNITS: dict[str, dict[str, float]] = {
    "frequency": {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9},
    "energy": {"fJ": 1e-15, "pJ": 1e-12, "nJ": 1e-9, "uJ": 1e-6, "J": 1.0},
    "energy_per_bit": {"fJ/bit": 1e-15, "pJ/bit": 1e-12, "nJ/bit": 1e-9, "J/bit": 1.0},
    "energy_per_access": {"fJ/access": 1e-15, "pJ/access": 1e-12, "nJ/access": 1e-9,
                          "J/access": 1.0},
    "size": {"bit": 1.0, "Kibit": 2.0**10, "Mibit": 2.0**20, "B": 8.0, "KiB": 8.0 * 2**10,
             "MiB": 8.0 * 2**20, "GiB": 8.0 * 2**30},
    "bits_per_cycle": {"bit/cycle": 1.0, "B/cycle": 8.0},
    "bytes_per_s": {"B/s": 1.0, "kB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9},
}

_EXAMPLES = {
    "frequency": "'500 MHz'",
    "energy": "'0.04 pJ'",
    "energy_per_bit": "'0.2 pJ/bit'",
    "energy_per_access": "'416.16 pJ/access'",
    "size": "'2 MiB' or '16777216 bit'",
    "bits_per_cycle": "'2048 bit/cycle'",
    "bytes_per_s": "'12.8 GB/s'",
}


class UnitError(ValueError):
  """A quantity string that cannot be read; the message says what to write instead."""


def units_for(*kinds: str) -> list[str]:
  """Every unit accepted for the given kinds, e.g. ``units_for('energy')``."""
  return [unit for kind in kinds for unit in UNITS[kind]]


def parse_quantity(text: object, *kinds: str, allow_zero: bool = False) -> tuple[float, str]:
  """Reads ``"<number> <unit>"`` and returns ``(value in SI, kind)``.

  Args:
    text: the raw YAML value.
    *kinds: the kinds of quantity allowed here (keys of ``UNITS``).
    allow_zero: accept 0 (otherwise values must be > 0).

  Returns:
    The value converted to the SI base of its kind, and which kind matched.

  Raises:
    UnitError: bare numbers, unknown or wrong units, non-finite, negative or zero values.

  Example:
    >>> parse_quantity("500 MHz", "frequency")
    (500000000.0, 'frequency')
  """
  example = " or ".join(_EXAMPLES[k] for k in kinds)
  if isinstance(text, bool) or not isinstance(text, (str, int, float)):
    raise UnitError(f"expected a quantity string with a unit such as {example}, got {text!r}")
  if not isinstance(text, str):
    raise UnitError(f"the number {text!r} has no unit; write it with one, e.g. {example}")
  match = _NUMBER_RE.match(text)
  if not match:
    raise UnitError(f"cannot read {text!r} as '<number> <unit>'; write e.g. {example}")
  value, unit = float(match["num"]), match["unit"]
  for kind in kinds:
    if unit in UNITS[kind]:
      break
  else:
    raise UnitError(f"unit {unit!r} in {text!r} is not allowed here; use one of "
                    f"{units_for(*kinds)}, e.g. {example}")
  if not math.isfinite(value):
    raise UnitError(f"{text!r} is not a finite number")
  if value < 0 or (value == 0 and not allow_zero):
    bound = ">= 0" if allow_zero else "> 0"
    raise UnitError(f"{text!r} must be {bound}")
  return value * UNITS[kind][unit], kind
