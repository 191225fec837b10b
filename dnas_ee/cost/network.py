"""The costs of a derived early-exit network: per exit, under pruning, on several cores.

The one home of these costs (the search's relaxed costs are in ``expected.py`` and
``search_cost.py``; the tests check both against their own oracle, written from
docs/design.md's definition in ``tests/support/oracle.py``):

- ``unit_costs``: each backbone block's and each exit branch's own cost;
- ``exit_costs``: ``[E, M]`` cost of a sample that leaves at exit ``j`` with every
  earlier branch evaluated; on a multi-core accelerator (``transfer`` given) the
  latency is the critical path of the discrete schedule (a branch on another core
  overlaps the backbone, ``multicore.discrete_schedule_latency``) and the energy
  includes the feature-map transfers of those branches;
- ``pruned_exit_costs``: the same when some early exits are pruned (never fire, so
  the deployed network does not compute their branches), for many settings at once;
- ``NetworkCosts``: all of the above for one network, with ``deployed(thresholds)``;
- ``objective_costs``: the one cost vector a calibration objective (``hw.objective``)
  minimizes.

Costs are *additive* over branches unless a branch runs on another core of a
multi-core accelerator; then pruning is accounted for by recomputing the costs of
the network without the pruned branches, and calibration counts dead branches
instead of pruning them (its pruning model is a subtraction).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from dnas_ee.cost.metrics import METRIC_LABELS, OBJECTIVE_METRICS, OBJECTIVES
from dnas_ee.cost.multicore import discrete_schedule_latency
from dnas_ee.cost.tables import CostSource, total_cost
from dnas_ee.space.ops import parse_op
from dnas_ee.space.space import SearchSpace


def unit_costs(space: SearchSpace, source: CostSource) -> tuple[np.ndarray, np.ndarray]:
  """(``[N, M]`` cost of each backbone block, ``[P, M]`` cost of each exit branch) of a
  derived space.

  Raises:
    ValueError: ``space`` is not derived (one op per slot, one width per group).
  """
  if any(len(ops) != 1 for b in space.branches for ops in b.slot_ops) or space.num_bits != 1:
    raise ValueError("a derived space (one op and one width per choice) is needed here: build it "
                     "with genotype_space(genotype)")
  num_classes = space.backbone.num_classes
  branch_costs = []
  for branch, (bits,) in zip(space.branches, space.branch_bits):
    sigs = list(branch.entry_signatures(bits))
    width = branch.base_width
    for s, (name,) in enumerate(branch.slot_ops):
      sigs += branch.op_signatures(s, name, width, bits)
      width = parse_op(name).out_width(width, branch.base_width)
    sigs += branch.classifier_signatures(width, num_classes, bits)
    branch_costs.append(total_cost(sigs, source))
  block_costs = [total_cost(space.block_signatures(i, bits[0]), source)
                 for i, bits in enumerate(space.backbone_bits)]
  m = len(source.metrics)
  return (np.asarray(np.stack(block_costs), np.float64),
          np.asarray(np.stack(branch_costs), np.float64) if branch_costs else np.zeros((0, m)))


def exit_costs(space: SearchSpace, source: CostSource, transfer=None) -> np.ndarray:
  """``[E, M]`` cost of a sample that leaves at exit ``j`` (early exits, then the final one).

  Every block up to exit ``j`` and every branch evaluated on the way (the earlier
  exits computed and rejected), exit ``j``'s own branch included.

  Args:
    space: a derived space.
    source: the cost source.
    transfer: multi-core accelerators: ``(latency [P, 1], energy [P, 1])`` of sending
      each branch's input to another core; the latency metric becomes the critical
      path of the schedule and the energy gains the transfers. None on one core.
  """
  blocks, branches = unit_costs(space, source)
  out = []
  for j in range(space.num_exits):
    last_block = space.branches[j].position if j < len(space.branches) else space.num_blocks
    out.append(blocks[:last_block].sum(0) + branches[:j + 1].sum(0))
  costs = np.stack(out)
  if transfer is not None and space.branches:
    lat, en = source.metrics.index("latency_s"), source.metrics.index("energy_j")
    t_lat, t_en = (np.asarray(t, np.float64) for t in transfer)
    flags, kept = space.parallel_flags, [b.position for b in space.branches]
    for j in range(space.num_exits):
      costs[j, lat] = discrete_schedule_latency(blocks[:, lat], branches[:, lat], t_lat[:, 0],
                                                kept, flags, j)
      costs[j, en] += sum(t_en[i, 0] for i in range(min(j + 1, len(kept))) if flags[i])
  return costs


def pruned_exit_costs(cumulative, branch, pruned) -> np.ndarray:
  """Cost of leaving at each exit when the ``pruned`` early exits' branches are not run.

  Args:
    cumulative: ``[E, ...]`` cost of leaving at each exit, nothing pruned.
    branch: ``[E-1, ...]`` each early exit's branch alone.
    pruned: bool ``[m, E-1]``, one pruning setting per row.

  Returns:
    ``[m, E, ...]``: ``cumulative[j] - sum_{k < j, k pruned} branch[k]`` (a pruned
    exit's own row keeps its unpruned cost; no sample leaves there).
  """
  cumulative = np.asarray(cumulative)
  pruned = np.asarray(pruned, bool)
  mask = pruned.reshape(pruned.shape + (1,) * (cumulative.ndim - 1))
  removed = np.zeros((pruned.shape[0],) + cumulative.shape)
  removed[:, 1:] = np.cumsum(mask * np.asarray(branch)[None], axis=1)
  return cumulative[None] - removed


@dataclasses.dataclass(frozen=True)
class NetworkCosts:
  """Costs of a derived network, per exit (early exits in order, then the final one).

  Attributes:
    metrics: names of the ``M`` metrics (the cost source's).
    cumulative: ``[E, M]`` cost of leaving at exit ``j`` with every earlier branch
      evaluated (``exit_costs``).
    branch: ``[E-1, M]`` each early exit's branch alone (its layers' costs).
    additive: whether pruning a branch saves exactly its cost (no branch on
      another core of a multi-core accelerator).
    space: the derived network's space.
    recompute: ``(pruned space, kept early exits) -> [E', M]`` cumulative costs of
      the network with only those early exits, used when not ``additive``.
  """
  metrics: tuple[str, ...]
  cumulative: np.ndarray
  branch: np.ndarray
  additive: bool
  space: SearchSpace = dataclasses.field(repr=False, compare=False)
  recompute: Callable = dataclasses.field(repr=False, compare=False)

  @property
  def num_exits(self) -> int:
    return self.cumulative.shape[0]

  def has(self, metric: str) -> bool:
    """Whether ``metric`` (or ``'edp'``: latency and energy) can be computed."""
    if metric == "edp":
      return "latency_s" in self.metrics and "energy_j" in self.metrics
    return metric in self.metrics

  def deployed(self, thresholds) -> np.ndarray:
    """``[E, M]`` cost of leaving at each exit when the ``+inf`` exits are pruned.

    A disabled exit (threshold ``+inf``) never fires, so the deployed network
    (``EarlyExitExecutor``) does not compute its branch. The rows of disabled
    exits keep their unpruned cost (no sample leaves there).
    """
    tau = np.asarray(thresholds, dtype=np.float64).reshape(-1)[:self.num_exits - 1]
    if tau.shape[0] != self.num_exits - 1:
      raise ValueError(f"{self.num_exits - 1} early-exit thresholds needed, got {tau.shape[0]}")
    pruned = tau == np.inf
    if not pruned.any():
      return self.cumulative.copy()
    if self.additive:
      return pruned_exit_costs(self.cumulative, self.branch, pruned[None])[0]
    keep = [int(k) for k in np.flatnonzero(~pruned)]
    out = self.cumulative.copy()
    out[keep + [self.num_exits - 1]] = self.recompute(prune_space(self.space, keep), keep)
    return out

  @property
  def backbone(self) -> np.ndarray:
    """``[M]`` the final exit alone (every early exit pruned): the bare backbone."""
    return self.deployed(np.full(self.num_exits - 1, np.inf))[-1]

  def column(self, costs: np.ndarray, metric: str) -> np.ndarray:
    """``[...]`` one metric of ``costs`` (``[..., M]``); ``'edp'`` is latency x energy."""
    costs = np.asarray(costs)
    if metric == "edp":
      if not self.has("edp"):
        raise ValueError(f"EDP needs latency_s and energy_j, the cost source has {self.metrics}: "
                         f"set --config.hw.accelerator")
      return costs[..., self.metrics.index("latency_s")] * costs[..., self.metrics.index("energy_j")]
    if metric not in self.metrics:
      raise ValueError(f"cost metric {metric!r} is not among {self.metrics}")
    return costs[..., self.metrics.index(metric)]


def prune_space(space: SearchSpace, keep) -> SearchSpace:
  """The derived ``space`` with only the early exits ``keep`` (indices, increasing)."""
  keep = list(keep)
  parallel = tuple(space.parallel_flags[k] for k in keep) if space.branch_parallel else ()
  return dataclasses.replace(space, branches=tuple(space.branches[k] for k in keep),
                             branch_bits=tuple(space.branch_bits[k] for k in keep),
                             branch_parallel=parallel)


def network_costs(space: SearchSpace, source: CostSource, transfer=None) -> NetworkCosts:
  """``NetworkCosts`` of the derived network ``space``.

  Args:
    space: a derived space (one op per slot, one width per group).
    source: the run's cost source (built once; every recomputation reuses it).
    transfer: ``(latency [P, 1], energy [P, 1])`` of sending each branch's input to
      another core (``dnas_ee.hw.transfer_tables``) on a multi-core accelerator, or
      None on one core.

  Raises:
    ValueError: ``space`` is not derived.
  """
  def recompute(sp, keep):
    return exit_costs(sp, source, None if transfer is None else
                      tuple(np.asarray(t)[list(keep)] for t in transfer))

  cumulative = exit_costs(space, source, transfer)
  _, branch = unit_costs(space, source)
  additive = not (any(space.parallel_flags) and transfer is not None)
  return NetworkCosts(tuple(source.metrics), cumulative, np.asarray(branch, np.float64), additive,
                      space, recompute)


@dataclasses.dataclass(frozen=True)
class ObjectiveCosts:
  """One cost per exit for a threshold search, from ``hw.objective``.

  Attributes:
    metric: ``'macs'``, ``'latency_s'``, ``'energy_j'``, ``'edp'`` or ``'weighted'``.
    costs: the network's ``NetworkCosts``.
    weights: ``[M]`` the metric as a linear combination of ``costs.metrics``, or
      None for ``'edp'`` (latency x energy, not linear).
    reference: the static backbone's cost in the same units.
    note: why the metric differs from the requested one, or ``''``.
  """
  metric: str
  costs: NetworkCosts
  weights: np.ndarray | None
  reference: float
  note: str = ""

  @property
  def label(self) -> str:
    return METRIC_LABELS.get(self.metric, self.metric)

  def vector(self, costs: np.ndarray) -> np.ndarray:
    """``[E]`` the metric of per-exit costs ``[E, M]`` (e.g. ``NetworkCosts.deployed``)."""
    if self.weights is None:
      return self.costs.column(costs, "edp")
    return np.asarray(costs) @ self.weights

  def _factor_columns(self) -> list[int]:
    """EDP's additive factors: the latency and energy columns of ``costs.metrics``."""
    return [self.costs.metrics.index("latency_s"), self.costs.metrics.index("energy_j")]

  @property
  def cumulative(self) -> np.ndarray:
    """The threshold search's ``cum_cost``: ``[E]`` cost of leaving at each exit with every
    earlier branch evaluated; for ``'edp'`` ``[E, 2]``, the latency and the energy of
    leaving there (each additive over layers, so each can be pruned; their product is the
    sample's EDP, ``dnas_ee.exits.thresholds``)."""
    if self.weights is None:
      return self.costs.cumulative[:, self._factor_columns()]
    return self.costs.cumulative @ self.weights

  @property
  def branch(self) -> np.ndarray | None:
    """The threshold search's ``branch_cost``: ``[E-1]`` each early exit's branch (``[E-1,
    2]`` latency and energy for ``'edp'``), for pruning dead exits in a calibration; None
    where pruning is not a subtraction (branches on another core)."""
    if not self.costs.additive:
      return None
    if self.weights is None:
      return self.costs.branch[:, self._factor_columns()]
    return self.costs.branch @ self.weights


def objective_costs(objective: str, costs: NetworkCosts, static: NetworkCosts,
                    metric_weights: dict | None = None) -> ObjectiveCosts:
  """The per-exit cost that ``hw.objective`` asks a calibration to minimize.

  Args:
    objective: ``config.hw.objective``: ``'macs'``, ``'bitops'``, ``'latency'``, ``'energy'``,
      ``'edp'`` (latency x energy of each exit, each factor pruned on its own) or
      ``'weighted'`` (``metric_weights`` over the metrics, each relative to the
      static backbone).
    costs: the early-exit network's costs.
    static: the static backbone's costs (its one exit is the reference).
    metric_weights: ``config.loss.metric_weights`` for ``'weighted'``.

  Returns:
    ``ObjectiveCosts``. Without the LUT metrics the objective falls back to MACs
    and ``note`` says so.

  Raises:
    ValueError: unknown objective, or ``'weighted'`` with no positive weight.
  """
  note = ""
  if objective in OBJECTIVE_METRICS or objective == "edp":
    metric = OBJECTIVE_METRICS.get(objective, "edp")
    if not costs.has(metric):
      note = (f"hw.objective={objective!r} needs the accelerator LUT metrics (latency_s, "
              f"energy_j), absent from this run (hw.accelerator is not set): using MACs instead")
      metric = "macs"
    if metric == "edp":
      weights = None
    else:
      weights = np.array([m == metric for m in costs.metrics], np.float64)
    if not costs.additive:
      note = _join(note, "branches run on other cores, so pruning one is no subtraction: the "
                         "calibration counts dead branches, the evaluation prunes them")
    reference = float(static.column(static.cumulative[-1], metric))
    return ObjectiveCosts(metric, costs, weights, reference, note)
  if objective == "weighted":
    given = dict(metric_weights or {})
    weights = np.array([float(given.get(m, 0.0)) / max(float(static.cumulative[-1, i]), 1e-30)
                        for i, m in enumerate(costs.metrics)])
    missing = sorted(m for m, w in given.items() if w and m not in costs.metrics)
    if missing:
      note = f"loss.metric_weights names metrics this run does not have ({missing}); they count 0"
    if not costs.additive:
      note = _join(note, "branches run on other cores, so pruning one is no subtraction: the "
                         "calibration counts dead branches, the evaluation prunes them")
    if not np.any(weights > 0):
      raise ValueError("hw.objective='weighted' with no positive loss.metric_weights entry: give "
                       f"a weight to at least one metric of {costs.metrics}")
    return ObjectiveCosts("weighted", costs, weights, float(static.cumulative[-1] @ weights), note)
  raise ValueError(f"unknown hw.objective {objective!r}; use one of {OBJECTIVES}")


def _join(*notes: str) -> str:
  return "; ".join(n for n in notes if n)
