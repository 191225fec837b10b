"""``OpCost``: what every cost source (analytic, ZigZag, measured) returns for one op."""
from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True, kw_only=True)
class OpCost:
  """Cost of one inference of one op on one accelerator.

  Attributes:
    macs: multiply-accumulates (0 for pools/add).
    cycles: accelerator clock cycles.
    latency_s: seconds (``cycles / clock``).
    energy_j: joules.
    model: which model produced it: ``analytic-1``, ``zigzag-<version>-fixed``,
      ``zigzag-<version>-search`` or ``measured``.
  """
  macs: int
  cycles: float
  latency_s: float
  energy_j: float
  model: str

  def __post_init__(self):
    if isinstance(self.macs, bool) or not isinstance(self.macs, int) or self.macs < 0:
      raise ValueError(f"OpCost.macs={self.macs!r} must be a non-negative int")
    for name in ("cycles", "latency_s", "energy_j"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
          or value < 0:
        raise ValueError(f"OpCost.{name}={value!r} must be a finite number >= 0")
    if not isinstance(self.model, str) or not self.model:
      raise ValueError(f"OpCost.model={self.model!r} must name the model that produced the cost")
