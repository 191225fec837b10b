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
from typing import Callable, Sequence

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
SLOT_DECIDED = 0.9          # a slot (or bit group) whose top probability reaches this is decided
OPS_RULES = ("priced", "argmax")
EXITS_RULES = ("searched", "hand_placed")


def _softmax(logits, temperature: float) -> np.ndarray:
  z = np.asarray(logits, np.float64) / temperature
  z = np.exp(z - z.max(-1, keepdims=True))
  return z / z.sum(-1, keepdims=True)


def derive_genotype(space: SearchSpace, exit_logits, op_logits, backbone_bit_logits,
                    branch_bit_logits, *, alloc_logits=None, rule: str = "threshold",
                    top_k: int = 1, temperature: float = 1.0, thresholds=None,
                    ops: str = "argmax", path_cost: Callable | None = None,
                    exits: str = "searched", hand_placed_ops: Sequence[str] = ()) -> Genotype:
  """docs/design.md's derivation: exits where ``sigmoid(beta) > 0.5`` (or the top-k),
  an op per slot, argmax bit width per group; on a multi-core accelerator a branch runs
  on another core where its allocation logit is positive.

  ``temperature``: the search's final op/gate temperature, at which the gate
  probabilities ``sigmoid(beta / T)`` and mixture probabilities recorded in
  ``Genotype.derivation`` are taken (the gate rule itself does not depend on it). A
  gate is *decided* when that probability lies outside ``GATE_DECIDED``, a slot when its
  top op probability reaches ``SLOT_DECIDED``.
  ``thresholds``: the exit thresholds the search ended with (recorded).
  ``ops``: 'argmax' (the most probable op of every slot) or 'priced' (derive what was
  priced: a decided slot takes its argmax; an undecided one, which the search priced
  near its mixture's average, takes the cheapest of its *contenders*, the ops at least
  half as probable as its top one, by ``path_cost``).
  ``path_cost``: ``(genotype, j) -> float``, the priced metric of leaving at early exit
  ``j`` of a genotype (needed by 'priced').
  ``exits``: 'searched', or 'hand_placed': an exit at every candidate position with the
  branch ``hand_placed_ops`` (later slots ``identity``) at the widths the search chose
  for that branch, the backbone at the searched widths (the hand-placed network at the
  search's bits, a baseline that isolates what the searched exits buy).
  """
  if ops not in OPS_RULES:
    raise ValueError(f"unknown derive.ops {ops!r}; use one of {OPS_RULES}")
  if exits not in EXITS_RULES:
    raise ValueError(f"unknown derive.exits {exits!r}; use one of {EXITS_RULES}")
  if ops == "priced" and path_cost is None and exits == "searched":
    raise ValueError("derive.ops='priced' needs the path costs (path_cost)")
  exit_logits = np.asarray(exit_logits, np.float64)
  if rule == "threshold":
    keep = [i for i, beta in enumerate(exit_logits) if beta > 0]
  elif rule == "top_k":
    keep = sorted(np.argsort(-exit_logits)[:top_k].tolist())
  else:
    raise ValueError(f"unknown derive rule {rule!r}; use 'threshold' or 'top_k'")
  op_p = _softmax(np.asarray(op_logits, np.float64).reshape(len(space.branches), space.depth, -1)
                  if space.branches else np.zeros((0, 0, 1)), temperature)
  bb_idx = np.asarray(backbone_bit_logits).argmax(-1)
  br_idx = np.asarray(branch_bit_logits).argmax(-1) if space.branches else np.zeros(0, int)
  parallel = (np.zeros(len(space.branches)) if alloc_logits is None
              else np.asarray(alloc_logits)) > 0
  backbone_bits = tuple(space.backbone_bits[n][bb_idx[n]] for n in range(space.num_blocks))
  if exits == "hand_placed":
    keep = list(range(len(space.branches)))
  exits_ = []
  for i in keep:
    branch = space.branches[i]
    if exits == "hand_placed":
      if len(hand_placed_ops) > branch.depth:
        raise ValueError(f"{len(hand_placed_ops)} hand-placed ops for {branch.depth} branch slots")
      chosen = tuple(hand_placed_ops) + ("identity",) * (branch.depth - len(hand_placed_ops))
    else:
      chosen = tuple(branch.slot_ops[s][int(op_p[i, s].argmax())] for s in range(branch.depth))
    exits_.append(ExitGene(branch.position, chosen, branch.slot_res,
                           space.branch_bits[i][br_idx[i]], bool(parallel[i])))
  genotype = Genotype(space.backbone, tuple(exits_), backbone_bits, space.edge_bits)
  choices = {}
  if ops == "priced" and exits == "searched":
    genotype, choices = _price_undecided_slots(space, genotype, keep, op_p, path_cost)
  derivation = _derivation_record(space, exit_logits, op_p, backbone_bit_logits,
                                  branch_bit_logits, keep, rule, temperature, thresholds,
                                  ops if exits == "searched" else "hand_placed", choices)
  return dataclasses.replace(genotype, derivation=derivation)


def _price_undecided_slots(space, genotype: Genotype, keep, op_p, path_cost):
  """Each undecided slot of a kept exit takes the cheapest contender, slot by slot in
  order (later slots are priced with the earlier ones already chosen)."""
  choices = {}
  for j, i in enumerate(keep):
    branch = space.branches[i]
    for s in range(branch.depth):
      probs = op_p[i, s]
      if probs.max() >= SLOT_DECIDED:
        continue
      contenders = [k for k in range(len(probs)) if probs[k] >= 0.5 * probs.max()]
      priced = {}
      for k in contenders:
        ops = list(genotype.exits[j].ops)
        ops[s] = branch.slot_ops[s][k]
        gene = dataclasses.replace(genotype.exits[j], ops=tuple(ops))
        trial = dataclasses.replace(genotype, exits=genotype.exits[:j] + (gene,) + genotype.exits[j + 1:])
        priced[k] = float(path_cost(trial, j))
      best = min(priced, key=lambda k: (priced[k], -probs[k]))
      gene = genotype.exits[j]
      ops = list(gene.ops)
      ops[s] = branch.slot_ops[s][best]
      genotype = dataclasses.replace(genotype, exits=genotype.exits[:j] + (
          dataclasses.replace(gene, ops=tuple(ops)),) + genotype.exits[j + 1:])
      choices[(i, s)] = dict(contenders=[branch.slot_ops[s][k] for k in contenders],
                             path_costs=[priced[k] for k in contenders],
                             chosen=branch.slot_ops[s][best])
  return genotype, choices


def _derivation_record(space, exit_logits, op_p, backbone_bit_logits, branch_bit_logits,
                       keep, rule, temperature, thresholds, ops_rule, choices) -> dict:
  """Why each choice was made, with its margin (JSON-ready)."""
  gates = 1.0 / (1.0 + np.exp(-exit_logits / temperature))
  low, high = GATE_DECIDED
  branch_bit_p = _softmax(branch_bit_logits, temperature) if space.branches else np.zeros((0, 1))
  backbone_bit_p = _softmax(backbone_bit_logits, temperature)
  exits = []
  for i, branch in enumerate(space.branches):
    kept = i in keep
    decided = bool(gates[i] < low or gates[i] > high)
    why = (f"gate {gates[i]:.3f} {'>' if kept else '<='} 0.5" if rule == "threshold"
           else f"{'in' if kept else 'not in'} the top {len(keep)} gates")
    slots = []
    for s in range(branch.depth):
      top = float(op_p[i, s].max())
      slot = dict(top_op=branch.slot_ops[s][int(op_p[i, s].argmax())],
                  top_prob=round(top, 6), decided=top >= SLOT_DECIDED)
      if (i, s) in choices:
        slot["priced"] = choices[(i, s)]
      slots.append(slot)
    exits.append(dict(
        position=branch.position, beta=round(float(exit_logits[i]), 6),
        gate=round(float(gates[i]), 6), kept=kept, decided=decided,
        margin=round(float(abs(gates[i] - 0.5)), 6),
        reason=why + ("" if decided else f" (undecided: inside {list(GATE_DECIDED)})"),
        threshold=None if thresholds is None else round(float(np.asarray(thresholds)[i]), 6),
        op_probs=[[round(float(p), 6) for p in row] for row in op_p[i]],
        slots=slots, slots_decided=all(x["decided"] for x in slots),
        bit_probs=[round(float(p), 6) for p in branch_bit_p[i]]))
  kept_slots = [x for e in exits if e["kept"] for x in e["slots"]]
  return dict(rule=rule, ops=ops_rule, temperature=float(temperature),
              gate_band=list(GATE_DECIDED), slot_decided_at=SLOT_DECIDED,
              all_gates_decided=all(e["decided"] for e in exits),
              undecided_slots=sum(not x["decided"] for x in kept_slots),
              all_bits_decided=bool(np.all(backbone_bit_p.max(-1) >= SLOT_DECIDED)),
              exits=exits,
              backbone_bit_probs=[[round(float(p), 6) for p in row] for row in backbone_bit_p])
