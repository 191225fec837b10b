"""Cost tables: the search space's costs as dense arrays, built once on the host.

A *cost source* maps an ``OpSignature`` to a vector of metrics (``ShapeCosts``:
MACs and weight bytes from shapes alone; a LUT: latency and energy). The tables
hold, per metric, the cost of every backbone block at every bit width and of
every branch op in every slot, input width and bit width, so the expected cost
inside a jitted step is a few ``einsum``s of probabilities and table entries.
"""
from __future__ import annotations

import dataclasses
from typing import Protocol, Sequence

import jax
import numpy as np

from dnas_ee.space.ops import parse_op
from dnas_ee.space.signature import OpSignature
from dnas_ee.space.space import SearchSpace


class CostSource(Protocol):
  metrics: tuple[str, ...]

  def __call__(self, sig: OpSignature) -> np.ndarray: ...


class ShapeCosts:
  """MACs, weight bytes and BitOPs, from shapes alone (no accelerator needed).

  BitOPs are ``MACs x w_bits x a_bits / 64`` (mixed-precision NAS's shape-only
  price of bit widths, in 8x8-bit MAC equivalents): MACs alone do not depend on
  bits, so a search against them leaves the bit choice to the task loss.
  """
  metrics = ("macs", "weight_bytes", "bitops")

  def __call__(self, sig: OpSignature) -> np.ndarray:
    return np.array([sig.macs, sig.weight_bytes, sig.macs * sig.w_bits * sig.a_bits / 64.0],
                    np.float64)


class CombinedCosts:
  """Concatenates the metrics of several sources (e.g. shapes + a LUT)."""

  def __init__(self, *sources: CostSource):
    self.sources = sources
    self.metrics = tuple(m for s in sources for m in s.metrics)
    if len(set(self.metrics)) != len(self.metrics):
      raise ValueError(f"duplicated cost metrics {self.metrics}")

  def __call__(self, sig: OpSignature) -> np.ndarray:
    return np.concatenate([s(sig) for s in self.sources])


def total_cost(sigs: Sequence[OpSignature], source: CostSource) -> np.ndarray:
  total = np.zeros(len(source.metrics))
  for sig in sigs:
    total += source(sig)
  return total


@dataclasses.dataclass(frozen=True)
class CostTables:
  """Dense cost arrays aligned with the supernet (``M`` metrics on the last axis).

  Attributes:
    block: [N, nb, M] backbone block i at width b (stem in block 0, head in block N-1).
    branch_entry: [P, nb, M] resize of the backbone feature into a branch's first slot.
    slot: [P, D, K, C, nb, M] op k of slot s on an input in width state c, including
      the resize of its output to the next slot (global pooling after the last).
    transition: [P, D, K, C, C] one-hot: width state after op k from state c.
    classifier: [P, C, nb, M] the dense classifier on a final width state c.
    init_state: [P, C] one-hot width state of each branch's input.
    metrics: names of the ``M`` metrics (static).
  """
  block: jax.Array
  branch_entry: jax.Array
  slot: jax.Array
  transition: jax.Array
  classifier: jax.Array
  init_state: jax.Array
  metrics: tuple[str, ...] = ()

  def metric_index(self, name: str) -> int:
    if name not in self.metrics:
      raise ValueError(f"cost metric {name!r} is not in the cost tables {self.metrics}; "
                       "latency_s/energy_j need an accelerator LUT (--config.hw.accelerator)")
    return self.metrics.index(name)


jax.tree_util.register_dataclass(
    CostTables, data_fields=["block", "branch_entry", "slot", "transition", "classifier",
                             "init_state"], meta_fields=["metrics"])


def build_cost_tables(space: SearchSpace, source: CostSource) -> CostTables:
  """Evaluates ``source`` on every op of ``space`` and lays the results out densely."""
  m = len(source.metrics)
  n, nb = space.num_blocks, space.num_bits
  p, d, k, c = len(space.branches), space.depth, space.num_ops, space.num_width_states
  block = np.zeros((n, nb, m))
  for i, bits in enumerate(space.backbone_bits):
    for bi, b in enumerate(bits):
      block[i, bi] = total_cost(space.block_signatures(i, b), source)
  entry = np.zeros((p, nb, m))
  slot = np.zeros((p, d, k, c, nb, m))
  transition = np.zeros((p, d, k, c, c))
  classifier = np.zeros((p, c, nb, m))
  init_state = np.zeros((p, c))
  num_classes = space.backbone.num_classes
  for j, (branch, bits) in enumerate(zip(space.branches, space.branch_bits)):
    mults = branch.width_mults
    init_state[j, mults.index(1)] = 1.0
    for bi, b in enumerate(bits):
      entry[j, bi] = total_cost(branch.entry_signatures(b), source)
      for ci, mult in enumerate(mults):
        width = mult * branch.base_width
        classifier[j, ci, bi] = total_cost(branch.classifier_signatures(width, num_classes, b), source)
        for s, names in enumerate(branch.slot_ops):
          if s == 0 and mult != 1:
            continue  # the first slot always reads the backbone feature (width state 1)
          for ki, name in enumerate(names):
            slot[j, s, ki, ci, bi] = total_cost(branch.op_signatures(s, name, width, b), source)
    for s, names in enumerate(branch.slot_ops):
      for ki, name in enumerate(names):
        op = parse_op(name)
        for ci, mult in enumerate(mults):
          out = mult if op.preserves_channels else op.expansion
          transition[j, s, ki, ci, mults.index(out)] = 1.0
  as32 = lambda a: np.asarray(a, np.float32)
  return CostTables(as32(block), as32(entry), as32(slot), as32(transition), as32(classifier),
                    as32(init_state), tuple(source.metrics))
