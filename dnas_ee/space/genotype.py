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
  # How the search decided (derive_genotype): per candidate exit its gate, whether it
  # was kept and why, with what margin. A record only; the network ignores it.
  derivation: dict | None = dataclasses.field(default=None, compare=False)

  @property
  def static(self) -> "Genotype":
    """The same backbone and bit widths without early exits."""
    return dataclasses.replace(self, exits=())

  def to_json(self) -> dict:
    bb = dataclasses.asdict(self.backbone)
    out = {"version": GENOTYPE_VERSION, "backbone": bb,
           "exits": [dataclasses.asdict(e) for e in self.exits],
           "backbone_bits": list(self.backbone_bits), "edge_bits": self.edge_bits}
    if self.derivation is not None:
      out["derivation"] = self.derivation
    return out

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
                 int(data["edge_bits"]), derivation=data.get("derivation"))
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


GATE_DECIDED = (0.1, 0.9)   # a gate outside this band at the end of the search is decided


def _softmax(logits, temperature: float) -> np.ndarray:
  z = np.asarray(logits, np.float64) / temperature
  z = np.exp(z - z.max(-1, keepdims=True))
  return z / z.sum(-1, keepdims=True)


def derive_genotype(space: SearchSpace, exit_logits, op_logits, backbone_bit_logits,
                    branch_bit_logits, *, alloc_logits=None, rule: str = "threshold",
                    top_k: int = 1, temperature: float = 1.0, thresholds=None) -> Genotype:
  """docs/design.md's derivation: exits where ``sigmoid(beta) > 0.5`` (or the top-k),
  argmax op per slot, argmax bit width per group; on a multi-core accelerator a
  branch runs on another core where its allocation logit is positive.

  ``temperature``: the search's final op/gate temperature, at which the gate
  probabilities ``sigmoid(beta / T)`` and mixture probabilities recorded in
  ``Genotype.derivation`` are taken (the rule itself does not depend on it). A
  gate is *decided* when that probability lies outside ``GATE_DECIDED``.
  ``thresholds``: the exit thresholds the search ended with (recorded).
  """
  exit_logits = np.asarray(exit_logits, np.float64)
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
  derivation = _derivation_record(space, exit_logits, op_logits, backbone_bit_logits,
                                  branch_bit_logits, keep, rule, temperature, thresholds)
  return Genotype(space.backbone, tuple(exits),
                  tuple(space.backbone_bits[n][bb_idx[n]] for n in range(space.num_blocks)),
                  space.edge_bits, derivation=derivation)


def _derivation_record(space, exit_logits, op_logits, backbone_bit_logits, branch_bit_logits,
                       keep, rule, temperature, thresholds) -> dict:
  """Why each choice was made, with its margin (JSON-ready)."""
  gates = 1.0 / (1.0 + np.exp(-exit_logits / temperature))
  low, high = GATE_DECIDED
  op_p = _softmax(op_logits, temperature)
  exits = []
  for i, branch in enumerate(space.branches):
    kept = i in keep
    decided = bool(gates[i] < low or gates[i] > high)
    why = (f"gate {gates[i]:.3f} {'>' if kept else '<='} 0.5" if rule == "threshold"
           else f"{'in' if kept else 'not in'} the top {len(keep)} gates")
    exits.append(dict(
        position=branch.position, beta=round(float(exit_logits[i]), 6),
        gate=round(float(gates[i]), 6), kept=kept, decided=decided,
        margin=round(float(abs(gates[i] - 0.5)), 6),
        reason=why + ("" if decided else f" (undecided: inside {list(GATE_DECIDED)})"),
        threshold=None if thresholds is None else round(float(np.asarray(thresholds)[i]), 6),
        op_probs=[[round(float(p), 6) for p in row] for row in op_p[i]],
        bit_probs=[round(float(p), 6) for p in _softmax(branch_bit_logits, temperature)[i]]))
  return dict(rule=rule, temperature=float(temperature), gate_band=list(GATE_DECIDED),
              all_gates_decided=all(e["decided"] for e in exits), exits=exits,
              backbone_bit_probs=[[round(float(p), 6) for p in row]
                                  for row in _softmax(backbone_bit_logits, temperature)])
