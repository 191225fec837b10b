"""Genotypes: the discrete architecture as plain JSON, and the rules that derive it.

A genotype holds the backbone spec, the exits kept (position, one op per slot,
slot resolutions, bit width), the bit width of every backbone block, and the
exit thresholds. ``genotype_space`` rebuilds the derived network's space from
the JSON alone (one candidate per choice), so the derived network is the same
module code at a one-hot architecture.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from dnas_ee.space.backbones import BackboneSpec, BlockSpec
from dnas_ee.space.space import BranchSpec, SearchSpace

GENOTYPE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ExitGene:
  position: int
  ops: tuple[str, ...]
  slot_res: tuple[int, ...]
  bits: int
  parallel: bool = False   # multi-core: the branch runs on another core


@dataclasses.dataclass(frozen=True)
class Genotype:
  backbone: BackboneSpec
  exits: tuple[ExitGene, ...]
  backbone_bits: tuple[int, ...]
  edge_bits: int

  @property
  def static(self) -> "Genotype":
    """The same backbone and bit widths without early exits."""
    return dataclasses.replace(self, exits=())

  def to_json(self) -> dict:
    bb = dataclasses.asdict(self.backbone)
    return {"version": GENOTYPE_VERSION, "backbone": bb,
            "exits": [dataclasses.asdict(e) for e in self.exits],
            "backbone_bits": list(self.backbone_bits), "edge_bits": self.edge_bits}

  @classmethod
  def from_json(cls, data: dict) -> "Genotype":
    try:
      if data.get("version") != GENOTYPE_VERSION:
        raise ValueError(f"genotype version {data.get('version')!r}, expected {GENOTYPE_VERSION}")
      bb = dict(data["backbone"])
      bb["blocks"] = tuple(BlockSpec(**b) for b in bb["blocks"])
      bb["image_shape"] = tuple(bb["image_shape"])
      exits = tuple(ExitGene(int(e["position"]), tuple(e["ops"]), tuple(e["slot_res"]), int(e["bits"]),
                             bool(e.get("parallel", False)))
                    for e in data["exits"])
      return cls(BackboneSpec(**bb), exits, tuple(int(b) for b in data["backbone_bits"]),
                 int(data["edge_bits"]))
    except (KeyError, TypeError) as err:
      raise ValueError(f"malformed genotype JSON ({err!r}); re-run `dnas-ee derive`") from None

  def save(self, path) -> None:
    Path(path).write_text(json.dumps(self.to_json(), indent=2))

  @classmethod
  def load(cls, path) -> "Genotype":
    path = Path(path)
    if not path.exists():
      raise FileNotFoundError(f"{path} not found: run `dnas-ee derive` first")
    return cls.from_json(json.loads(path.read_text()))


def genotype_space(genotype: Genotype) -> SearchSpace:
  """The derived network's space: every choice a singleton, exits fixed."""
  branches = []
  for gene in genotype.exits:
    block = genotype.backbone.blocks[gene.position - 1]
    branches.append(BranchSpec(gene.position, block.out_res, block.cout, gene.slot_res,
                               tuple((op,) for op in gene.ops)))
  return SearchSpace(genotype.backbone, tuple(branches), tuple((b,) for b in genotype.backbone_bits),
                     tuple((g.bits,) for g in genotype.exits), genotype.edge_bits, fixed_exits=True,
                     branch_parallel=tuple(g.parallel for g in genotype.exits))


def derive_genotype(space: SearchSpace, exit_logits, op_logits, backbone_bit_logits,
                    branch_bit_logits, *, alloc_logits=None, rule: str = "threshold",
                    top_k: int = 1) -> Genotype:
  """DESIGN.md's derivation: exits where ``sigmoid(beta) > 0.5`` (or the top-k),
  argmax op per slot, argmax bit width per group; on a multi-core accelerator a
  branch runs on another core where its allocation logit is positive."""
  exit_logits = np.asarray(exit_logits)
  if rule == "threshold":
    keep = [i for i, beta in enumerate(exit_logits) if beta > 0]
  elif rule == "top_k":
    keep = sorted(np.argsort(-exit_logits)[:top_k].tolist())
  else:
    raise ValueError(f"unknown derive rule {rule!r}; use 'threshold' or 'top_k'")
  op_idx = np.asarray(op_logits).argmax(-1)
  bb_idx = np.asarray(backbone_bit_logits).argmax(-1)
  br_idx = np.asarray(branch_bit_logits).argmax(-1)
  parallel = (np.zeros(len(space.branches)) if alloc_logits is None
              else np.asarray(alloc_logits)) > 0
  exits = []
  for i in keep:
    branch = space.branches[i]
    ops = tuple(branch.slot_ops[s][op_idx[i, s]] for s in range(branch.depth))
    exits.append(ExitGene(branch.position, ops, branch.slot_res,
                          space.branch_bits[i][br_idx[i]], bool(parallel[i])))
  return Genotype(space.backbone, tuple(exits),
                  tuple(space.backbone_bits[n][bb_idx[n]] for n in range(space.num_blocks)),
                  space.edge_bits)
