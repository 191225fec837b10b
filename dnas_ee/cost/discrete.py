"""Cost of a *discrete* early-exit network, walking its layers directly.

Independent of the dense tables on purpose: the zero-temperature test checks
the relaxed expected cost against this direct account.
"""
from __future__ import annotations

import numpy as np

from dnas_ee.cost.tables import CostSource, total_cost
from dnas_ee.space.ops import parse_op
from dnas_ee.space.space import SearchSpace


def discrete_unit_costs(space: SearchSpace, source: CostSource) -> tuple[np.ndarray, np.ndarray]:
  """([N, M] cost of each backbone block, [P, M] cost of each exit branch) of a derived space."""
  if any(len(ops) != 1 for b in space.branches for ops in b.slot_ops) or space.num_bits != 1:
    raise ValueError("a derived space (one op and one width per choice) is needed here")
  num_classes = space.backbone.num_classes
  branch_costs = []
  for branch, (bits,) in zip(space.branches, space.branch_bits):
    sigs = branch.entry_signatures(bits)
    width = branch.base_width
    for s, (name,) in enumerate(branch.slot_ops):
      sigs += branch.op_signatures(s, name, width, bits)
      width = parse_op(name).out_width(width, branch.base_width)
    sigs += branch.classifier_signatures(width, num_classes, bits)
    branch_costs.append(total_cost(sigs, source))
  block_costs = [total_cost(space.block_signatures(i, bits[0]), source)
                 for i, bits in enumerate(space.backbone_bits)]
  m = len(source.metrics)
  return np.stack(block_costs), np.stack(branch_costs) if branch_costs else np.zeros((0, m))


def discrete_exit_costs(space: SearchSpace, source: CostSource) -> np.ndarray:
  """[E, M] cost of a sample that leaves at exit j (early exits, then the final one).

  ``space`` must be a derived space (one op per slot, one width per group): the
  cost counts every block up to exit j and every branch evaluated on the way
  (the earlier exits computed and rejected), including exit j's own branch.
  """
  block_costs, branch_costs = discrete_unit_costs(space, source)
  out = []
  for j in range(space.num_exits):
    last_block = space.branches[j].position if j < len(space.branches) else space.num_blocks
    out.append(block_costs[:last_block].sum(0) + branch_costs[:j + 1].sum(0))
  return np.stack(out)
