"""Op signatures: the key shared by the search space, the cost layer and the LUTs.

An op signature names one layer as the accelerator sees it: its type, input
feature-map size, channels, kernel, stride, groups and the operand bit widths.
Every cost source (shapes alone, the analytic roofline model, ZigZag, a LUT
measured on a real device) is a function ``OpSignature -> costs``; the search
space enumerates the signatures it can produce, so a LUT can be checked for
completeness before a search starts.
"""
from __future__ import annotations

import dataclasses
import math
import re

# Op types a signature may carry. ``conv`` covers dense (1x1 at 1x1 spatial) and
# grouped/depthwise convolutions (``groups``); pools and ``add`` have no weights.
OP_TYPES = ("conv", "dense", "maxpool", "avgpool", "add", "gap")
WEIGHTED_OPS = ("conv", "dense")

_KEY_RE = re.compile(
    r"^(?P<op>[a-z]+)_h(?P<h>\d+)_w(?P<w>\d+)_ci(?P<cin>\d+)_co(?P<cout>\d+)"
    r"_k(?P<kernel>\d+)_s(?P<stride>\d+)_g(?P<groups>\d+)_wb(?P<w_bits>\d+)_ab(?P<a_bits>\d+)$")


@dataclasses.dataclass(frozen=True, order=True)
class OpSignature:
  """One layer as a cost model sees it (NHWC, SAME padding).

  Attributes:
    op: one of ``OP_TYPES``.
    h, w: input feature-map height and width.
    cin, cout: input and output channels.
    kernel: square kernel size (1 for dense/add/gap).
    stride: spatial stride (output size is ``ceil(h / stride)``).
    groups: convolution groups (``cin`` for depthwise).
    w_bits, a_bits: weight and input-activation bit widths.
  """
  op: str
  h: int
  w: int
  cin: int
  cout: int
  kernel: int = 1
  stride: int = 1
  groups: int = 1
  w_bits: int = 8
  a_bits: int = 8

  def __post_init__(self):
    if self.op not in OP_TYPES:
      raise ValueError(f"unknown op type {self.op!r} in op signature; use one of {OP_TYPES}")
    for name in ("h", "w", "cin", "cout", "kernel", "stride", "groups", "w_bits", "a_bits"):
      value = getattr(self, name)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"op signature field {name}={value!r} must be a positive int")
    if self.cin % self.groups or self.cout % self.groups:
      raise ValueError(f"groups={self.groups} must divide cin={self.cin} and cout={self.cout}")

  @property
  def h_out(self) -> int:
    return 1 if self.op == "gap" else math.ceil(self.h / self.stride)

  @property
  def w_out(self) -> int:
    return 1 if self.op == "gap" else math.ceil(self.w / self.stride)

  @property
  def macs(self) -> int:
    """Multiply-accumulates of one inference of this op (0 for ops without weights)."""
    if self.op not in WEIGHTED_OPS:
      return 0
    return self.h_out * self.w_out * self.cout * (self.cin // self.groups) * self.kernel**2

  @property
  def weight_count(self) -> int:
    if self.op not in WEIGHTED_OPS:
      return 0
    return self.cout * (self.cin // self.groups) * self.kernel**2

  @property
  def weight_bytes(self) -> float:
    return self.weight_count * self.w_bits / 8.0

  @property
  def input_elements(self) -> int:
    return self.h * self.w * self.cin

  @property
  def output_elements(self) -> int:
    return self.h_out * self.w_out * self.cout

  def key(self) -> str:
    """Stable text key, e.g. ``conv_h8_w8_ci16_co32_k3_s2_g1_wb4_ab4``."""
    return (f"{self.op}_h{self.h}_w{self.w}_ci{self.cin}_co{self.cout}_k{self.kernel}"
            f"_s{self.stride}_g{self.groups}_wb{self.w_bits}_ab{self.a_bits}")

  @classmethod
  def from_key(cls, key: str) -> "OpSignature":
    match = _KEY_RE.match(key)
    if not match:
      raise ValueError(f"malformed op signature key {key!r}; expected e.g. "
                       "'conv_h8_w8_ci16_co32_k3_s2_g1_wb4_ab4'")
    fields = match.groupdict()
    return cls(op=fields.pop("op"), **{k: int(v) for k, v in fields.items()})

  def with_bits(self, bits: int) -> "OpSignature":
    return dataclasses.replace(self, w_bits=bits, a_bits=bits)
