"""Cost of a *discrete* early-exit network, walking its layers directly.

Independent of the dense tables on purpose: the zero-temperature test checks
the relaxed expected cost against this direct account.
"""
from __future__ import annotations

import numpy as np

from dnas_ee.cost.tables import CostSource, total_cost
from dnas_ee.space.ops import parse_op
from dnas_ee.space.space import SearchSpace


def discrete_exit_costs(space: SearchSpace, source: CostSource) -> np.ndarray:
  """[E, M] cost of a sample that leaves at exit j (early exits, then the final one).

  ``space`` must be a derived space (one op per slot, one width per group): the
  cost counts every block up to exit j and every branch evaluated on the way
  (the earlier exits computed and rejected), including exit j's own branch.
  """
  if any(len(ops) != 1 for b in space.branches for ops in b.slot_ops) or space.num_bits != 1:
    raise ValueError("discrete_exit_costs needs a derived space (one op and width per choice)")
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
  out = []
  for j in range(space.num_exits):
    last_block = space.branches[j].position if j < len(space.branches) else space.num_blocks
    out.append(sum(block_costs[:last_block]) + sum(branch_costs[:j + 1]))
  return np.stack(out)
