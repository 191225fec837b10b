"""The search space as data: backbone, exit positions, branch slots and bit widths.

Built from the config once, on the host. The supernet, the cost tables and the
LUT builder all read their shapes from here, so they cannot disagree.

A branch at position ``p`` (after backbone block ``p``, 1-based) reads that block's
output (``res x res x C0``), resizes it to the first slot's resolution, and runs
``D`` slots; slot ``s`` works at resolution ``slot_res[s]`` and every candidate's
output is resized (area pooling or nearest upsampling) to the next slot's
resolution, so the candidates of a slot can be mixed whatever their stride
(AEBNAS resizes stage inputs to 8x8/10x10 for the same reason). Channel widths
are multiples of ``C0``: conv-like ops output ``expansion * C0``, pools and
identity keep their input width; narrower outputs are zero-padded to the widest.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from dnas_ee.quant import check_bits
from dnas_ee.space.backbones import (
    BackboneSpec, block_signatures, head_signatures, stem_signatures)
from dnas_ee.space.ops import parse_op
from dnas_ee.space.signature import OpSignature


@dataclasses.dataclass(frozen=True)
class BranchSpec:
  """Exit branch after backbone block ``position`` (1-based)."""
  position: int
  in_res: int
  base_width: int                       # C0: channels of the backbone feature it reads
  slot_res: tuple[int, ...]             # input resolution of each slot
  slot_ops: tuple[tuple[str, ...], ...]  # candidate op names of each slot

  @property
  def depth(self) -> int:
    return len(self.slot_ops)

  @property
  def width_mults(self) -> tuple[int, ...]:
    """Possible channel widths inside the branch, as multiples of ``base_width``."""
    mults = {1}
    for ops in self.slot_ops:
      for name in ops:
        op = parse_op(name)
        if not op.preserves_channels:
          mults.add(op.expansion)
    return tuple(sorted(mults))

  def max_width(self) -> int:
    return self.base_width * self.width_mults[-1]

  def resize_signatures(self, res_in: int, res_out: int, width: int, bits: int) -> list[OpSignature]:
    """Area downsampling is an average pool; nearest upsampling is free (a copy)."""
    if res_in <= res_out:
      return []
    factor = res_in // res_out
    return [OpSignature("avgpool", res_in, res_in, width, width, factor, factor, width, bits, bits)]

  def op_signatures(self, slot: int, op_name: str, in_width: int, bits: int) -> list[OpSignature]:
    """Layers of ``op_name`` in ``slot`` on an input of ``in_width`` channels, plus
    the resize of its output to the next slot (or the global pooling after the last)."""
    op = parse_op(op_name)
    res = self.slot_res[slot]
    sigs = op.signatures(res, in_width, self.base_width, bits)
    out_res, out_width = op.out_res(res), op.out_width(in_width, self.base_width)
    if slot + 1 < self.depth:
      sigs += self.resize_signatures(out_res, self.slot_res[slot + 1], out_width, bits)
    else:
      sigs.append(OpSignature("gap", out_res, out_res, out_width, out_width, 1, 1, 1, bits, bits))
    return sigs

  def entry_signatures(self, bits: int) -> list[OpSignature]:
    return self.resize_signatures(self.in_res, self.slot_res[0], self.base_width, bits)

  def classifier_signatures(self, in_width: int, num_classes: int, bits: int) -> list[OpSignature]:
    return [OpSignature("dense", 1, 1, in_width, num_classes, 1, 1, 1, bits, bits)]


@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """Everything the supernet and the cost layer need, as plain data.

  ``backbone_bits[i]`` / ``branch_bits[j]`` are the candidate widths of block ``i``
  and branch ``j`` (all equal in a search space; singletons in a derived network).
  ``fixed_exits`` marks a derived network: its exits are placed (gates are 1).
  """
  backbone: BackboneSpec
  branches: tuple[BranchSpec, ...]
  backbone_bits: tuple[tuple[int, ...], ...]
  branch_bits: tuple[tuple[int, ...], ...]
  edge_bits: int = 8
  fixed_exits: bool = False
  branch_parallel: tuple[bool, ...] = ()   # derived networks: branch on another core

  @property
  def parallel_flags(self) -> tuple[bool, ...]:
    return self.branch_parallel or (False,) * len(self.branches)

  def __post_init__(self):
    n = len(self.backbone.blocks)
    if len(self.backbone_bits) != n:
      raise ValueError(f"backbone_bits needs {n} entries (one per block), got {len(self.backbone_bits)}")
    if len(self.branch_bits) != len(self.branches):
      raise ValueError("branch_bits needs one entry per branch")
    if self.branch_parallel and len(self.branch_parallel) != len(self.branches):
      raise ValueError("branch_parallel needs one entry per branch")
    for i, bits in enumerate(self.backbone_bits):
      check_bits(bits, f"bits of backbone block {i + 1}")
    for j, bits in enumerate(self.branch_bits):
      check_bits(bits, f"bits of the branch at position {self.branches[j].position}")
    check_bits((self.edge_bits,), "space.edge_bits")
    sizes = {len(b) for b in self.backbone_bits + self.branch_bits}
    if len(sizes) > 1:
      raise ValueError("every quantization group must have the same number of candidate widths")
    positions = [b.position for b in self.branches]
    if positions != sorted(set(positions)) or any(not 1 <= p < n for p in positions):
      raise ValueError(f"exit positions {positions} must be increasing block indices in [1, {n - 1}] "
                       "(the final classifier after the last block always exists)")
    ks = {len(ops) for b in self.branches for ops in b.slot_ops}
    if len(ks) > 1:
      raise ValueError("every branch slot must have the same number of candidate ops")
    for b in self.branches:
      for ops in b.slot_ops:
        for name in ops:
          parse_op(name)

  @property
  def num_blocks(self) -> int:
    return len(self.backbone.blocks)

  @property
  def num_exits(self) -> int:
    """Early exits plus the final one."""
    return len(self.branches) + 1

  @property
  def num_bits(self) -> int:
    return len(self.backbone_bits[0])

  @property
  def num_ops(self) -> int:
    return len(self.branches[0].slot_ops[0]) if self.branches else 1

  @property
  def depth(self) -> int:
    return max((b.depth for b in self.branches), default=0)

  @property
  def num_width_states(self) -> int:
    return max((len(b.width_mults) for b in self.branches), default=1)

  def block_signatures(self, block: int, bits: int) -> list[OpSignature]:
    """Signatures of block ``block`` (0-based), the stem folded into the first and
    the head into the last (both at ``edge_bits``)."""
    spec = self.backbone
    sigs = block_signatures(spec.blocks[block], bits)
    if block == 0:
      sigs = stem_signatures(spec, self.edge_bits) + sigs
    if block == self.num_blocks - 1:
      sigs = sigs + head_signatures(spec, self.edge_bits)
    return sigs

  def all_signatures(self) -> list[OpSignature]:
    """Every op signature this space can produce (for LUT building and checking)."""
    sigs = set()
    for i, bits in enumerate(self.backbone_bits):
      for b in bits:
        sigs.update(self.block_signatures(i, b))
    for branch, bits in zip(self.branches, self.branch_bits):
      widths = [m * branch.base_width for m in branch.width_mults]
      for b in bits:
        sigs.update(branch.entry_signatures(b))
        for slot, ops in enumerate(branch.slot_ops):
          in_widths = [branch.base_width] if slot == 0 else widths
          for name in ops:
            for w in in_widths:
              sigs.update(branch.op_signatures(slot, name, w, b))
        for w in widths:
          sigs.update(branch.classifier_signatures(w, self.backbone.num_classes, b))
    return sorted(sigs)

  def identity_key(self) -> str:
    """A short hash naming this space (recorded in LUTs and run directories)."""
    import hashlib
    return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


def make_search_space(backbone: BackboneSpec, *, exit_positions: Sequence[int],
                      branch_ops: Sequence[str], branch_depth: int,
                      branch_resolutions: Sequence[int], bits: Sequence[int],
                      edge_bits: int = 8) -> SearchSpace:
  """Builds the search space of a supernet from config-level choices (no exit
  positions: a bits-only search of the backbone)."""
  bits = check_bits(bits, "space.bits")
  exit_positions = tuple(int(p) for p in exit_positions)   # () searches the bits alone
  if branch_depth < 1:
    raise ValueError(f"space.branch_depth={branch_depth} must be >= 1")
  if not branch_ops:
    raise ValueError("space.branch_ops is empty: give candidate ops, e.g. ('conv3_s2_x1', 'identity')")
  if len(branch_resolutions) < branch_depth:
    raise ValueError(f"space.branch_resolutions needs {branch_depth} entries (one per slot), "
                     f"got {tuple(branch_resolutions)}")
  n = len(backbone.blocks)
  branches = []
  for p in exit_positions:
    if not 1 <= p < n:
      raise ValueError(f"exit position {p} is out of range: use block indices in [1, {n - 1}]")
    block = backbone.blocks[p - 1]
    res = block.out_res
    slot_res = tuple(min(int(r), res) for r in branch_resolutions[:branch_depth])
    for a, b in zip((res,) + slot_res, slot_res):
      if max(a, b) % min(a, b):
        raise ValueError(f"branch resolutions {slot_res} at position {p} (feature {res}x{res}) "
                         "need integer resize ratios; use powers of two")
    branches.append(BranchSpec(p, res, block.cout, slot_res, (tuple(branch_ops),) * branch_depth))
  return SearchSpace(backbone, tuple(branches), (bits,) * n, (bits,) * len(branches), edge_bits)
