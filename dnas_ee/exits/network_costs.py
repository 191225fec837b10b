"""Per-exit costs of a derived network, as calibration and evaluation need them.

``pipeline.network_exit_costs`` gives the cost of leaving at each exit with every
earlier branch evaluated (on a multi-core accelerator, the latency is the
critical path of the discrete schedule, where a branch on another core overlaps
the backbone). Deployment and threshold calibration also need what pruning an
exit saves: an exit that never fires (threshold ``+inf``) is not computed at all.
``NetworkCosts`` holds the cumulative costs and each branch's own cost for every
metric of the cost source (MACs and weight bytes, plus latency and energy when an
accelerator LUT is configured), gives the deployed costs under a threshold
setting, and ``objective_costs`` turns them into the one cost vector a
calibration objective uses.

Costs are *additive* over branches unless a branch runs on another core of a
multi-core accelerator; then pruning is accounted for by recomputing the costs
of the network without the pruned branches, and calibration counts dead
branches instead of pruning them (its pruning model is a subtraction).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from dnas_ee.cost.discrete import discrete_unit_costs
from dnas_ee.space.space import SearchSpace

# hw.objective -> the cost metric it optimizes ('edp' and 'weighted' are combinations).
OBJECTIVE_METRICS = {"macs": "macs", "latency": "latency_s", "energy": "energy_j"}
METRIC_LABELS = {"macs": "MACs", "weight_bytes": "weight bytes", "latency_s": "latency (s)",
                 "energy_j": "energy (J)", "edp": "EDP (J s)", "weighted": "weighted cost"}


@dataclasses.dataclass(frozen=True)
class NetworkCosts:
  """Costs of a derived network, per exit (early exits in order, then the final one).

  Attributes:
    metrics: names of the ``M`` metrics (the cost source's).
    cumulative: ``[E, M]`` cost of leaving at exit ``j`` with every earlier branch
      evaluated (``pipeline.network_exit_costs``).
    branch: ``[E-1, M]`` each early exit's branch alone (its layers' costs).
    additive: whether pruning a branch saves exactly its cost (no branch on
      another core of a multi-core accelerator).
    space: the derived network's space.
    recompute: ``space -> [E', M]`` cumulative costs of another derived space (a
      pruned one), used when not ``additive``.
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
      removed = np.zeros_like(self.cumulative)
      removed[1:] = np.cumsum(pruned[:, None] * self.branch, axis=0)
      return self.cumulative - removed
    keep = [int(k) for k in np.flatnonzero(~pruned)]
    out = self.cumulative.copy()
    out[keep + [self.num_exits - 1]] = self.recompute(prune_space(self.space, keep))
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


def network_costs(config, space: SearchSpace) -> NetworkCosts:
  """``NetworkCosts`` of the derived network ``space`` under the run's cost model.

  Raises:
    ValueError: ``space`` is not derived (one op per slot, one width per group).
  """
  from dnas_ee import pipeline
  from dnas_ee.train import build

  source = build.build_cost_source(config, space)   # one LUT load serves every call below
  recompute = lambda sp: np.asarray(pipeline.network_exit_costs(config, sp, source)[0], np.float64)
  cumulative, metrics = pipeline.network_exit_costs(config, space, source)
  _, branch = discrete_unit_costs(space, source)
  additive = not (any(space.parallel_flags) and build.multicore_accelerator(config) is not None)
  return NetworkCosts(tuple(metrics), np.asarray(cumulative, np.float64),
                      np.asarray(branch, np.float64), additive, space, recompute)


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

  @property
  def cumulative(self) -> np.ndarray:
    """``[E]`` cost of leaving at each exit with every earlier branch evaluated."""
    return self.vector(self.costs.cumulative)

  @property
  def branch(self) -> np.ndarray | None:
    """``[E-1]`` each early exit's branch (for pruning dead exits in a calibration), or
    None where pruning is not a subtraction (EDP; branches on another core)."""
    if self.weights is None or not self.costs.additive:
      return None
    return self.costs.branch @ self.weights


def objective_costs(objective: str, costs: NetworkCosts, static: NetworkCosts,
                    metric_weights: dict | None = None) -> ObjectiveCosts:
  """The per-exit cost that ``hw.objective`` asks a calibration to minimize.

  Args:
    objective: ``config.hw.objective``: ``'macs'``, ``'latency'``, ``'energy'``,
      ``'edp'`` (latency x energy of each exit; not additive, so no pruning) or
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
  raise ValueError(f"unknown hw.objective {objective!r}; use 'macs', 'latency', 'energy', 'edp' "
                   f"or 'weighted'")


def _join(*notes: str) -> str:
  return "; ".join(n for n in notes if n)
