"""Registry of exit-branch candidate ops.

A branch op is named by a short string that the registry parses into an
``OpSpec``: ``conv{k}_s{s}_x{e}`` (conv-BN-ReLU, kernel k, stride s, output
width e times the branch's input width), ``dwsep{k}_s{s}_x{e}`` (depthwise kxk
then pointwise conv-BN-ReLU), ``maxpool{k}_s{s}``, ``avgpool{k}_s{s}`` and
``identity`` (the slot is skipped: this is how branch depth is searched).
Together they cover AEBNAS's branch space (conv k3/k5, stride 1/2, expansion
x1/x2, max-pool) plus DARTS's pools and skip.

Channel-preserving ops (pools, identity, the depthwise half of ``dwsep``) carry
no BatchNorm or bias, so zero channels stay zero: this is what makes the
zero-padded channel mixture of a slot exact (see ``models.branch``).
"""
from __future__ import annotations

import dataclasses
import re

from dnas_ee.space.signature import OpSignature

OP_KINDS = ("conv", "dwsep", "maxpool", "avgpool", "identity")
_NAME_RE = re.compile(r"^(?P<kind>conv|dwsep)(?P<k>\d+)_s(?P<s>\d+)_x(?P<e>\d+)$"
                      r"|^(?P<pool>maxpool|avgpool)(?P<pk>\d+)_s(?P<ps>\d+)$|^identity$")


@dataclasses.dataclass(frozen=True)
class OpSpec:
  """A parsed branch op."""
  name: str
  kind: str
  kernel: int = 1
  stride: int = 1
  expansion: int = 1   # output width = expansion * branch input width (conv-like ops)

  @property
  def preserves_channels(self) -> bool:
    return self.kind in ("maxpool", "avgpool", "identity")

  def out_width(self, in_width: int, base_width: int) -> int:
    return in_width if self.preserves_channels else self.expansion * base_width

  def out_res(self, res: int) -> int:
    return -(-res // self.stride)

  def signatures(self, res: int, in_width: int, base_width: int, bits: int) -> list[OpSignature]:
    """Layers of this op on a ``res x res x in_width`` input at ``bits``."""
    out_width = self.out_width(in_width, base_width)
    if self.kind == "identity":
      return []
    if self.kind in ("maxpool", "avgpool"):
      return [OpSignature(self.kind, res, res, in_width, in_width, self.kernel, self.stride,
                          in_width, bits, bits)]
    if self.kind == "conv":
      return [OpSignature("conv", res, res, in_width, out_width, self.kernel, self.stride, 1,
                          bits, bits)]
    out_res = self.out_res(res)
    return [OpSignature("conv", res, res, in_width, in_width, self.kernel, self.stride, in_width,
                        bits, bits),
            OpSignature("conv", out_res, out_res, in_width, out_width, 1, 1, 1, bits, bits)]


def parse_op(name: str) -> OpSpec:
  """Parses a candidate op name, e.g. ``conv3_s2_x2`` or ``maxpool2_s2``."""
  match = _NAME_RE.match(name)
  if not match:
    raise ValueError(
        f"unknown branch op {name!r}: use conv{{k}}_s{{s}}_x{{e}}, dwsep{{k}}_s{{s}}_x{{e}}, "
        "maxpool{k}_s{s}, avgpool{k}_s{s} or identity (e.g. conv3_s2_x1)")
  if name == "identity":
    return OpSpec(name, "identity")
  if match["kind"]:
    kernel, stride, expansion = int(match["k"]), int(match["s"]), int(match["e"])
    kind = match["kind"]
  else:
    kernel, stride, expansion, kind = int(match["pk"]), int(match["ps"]), 1, match["pool"]
  if kernel < 1 or stride < 1 or expansion < 1:
    raise ValueError(f"branch op {name!r}: kernel, stride and expansion must be >= 1")
  return OpSpec(name, kind, kernel, stride, expansion)


# AEBNAS's stage (conv k3/k5, stride 2, x1/x2, optional max-pool) plus stride 1,
# depthwise-separable, pools and skip.
DEFAULT_BRANCH_OPS = (
    "conv3_s1_x1", "conv3_s2_x1", "conv3_s2_x2", "conv5_s2_x1", "conv5_s2_x2",
    "dwsep3_s1_x2", "dwsep5_s2_x2", "maxpool2_s2", "avgpool2_s2", "identity")
