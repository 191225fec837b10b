"""Per-exit costs of a derived network, as calibration and evaluation need them.

``discrete_exit_costs`` gives the cumulative cost of leaving at each exit with
every earlier branch evaluated. Deployment and threshold calibration also need
the pieces: each branch's own cost (to prune exits that never fire) and the
backbone's cost up to each exit. ``NetworkCosts`` holds all three for every cost
metric of the source (MACs and weight bytes, plus latency and energy when an
accelerator LUT is configured) and turns them into the one cost vector a
calibration objective uses (``objective_costs``).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from dnas_ee.cost.discrete import discrete_exit_costs
from dnas_ee.cost.tables import CostSource, total_cost
from dnas_ee.space.ops import parse_op
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
      evaluated (``discrete_exit_costs``).
    branch: ``[E-1, M]`` each early exit's branch alone.
    backbone: ``[E, M]`` backbone blocks (stem and head included) up to exit ``j``.
  """
  metrics: tuple[str, ...]
  cumulative: np.ndarray
  branch: np.ndarray
  backbone: np.ndarray

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
    (``EarlyExitExecutor``) does not compute its branch.
    """
    tau = np.asarray(thresholds, dtype=np.float64).reshape(-1)[:self.num_exits - 1]
    if tau.shape[0] != self.num_exits - 1:
      raise ValueError(f"{self.num_exits - 1} early-exit thresholds needed, got {tau.shape[0]}")
    removed = np.zeros_like(self.cumulative)
    pruned = (tau == np.inf)[:, None] * self.branch
    removed[1:] = np.cumsum(pruned, axis=0)
    return self.cumulative - removed

  def column(self, costs: np.ndarray, metric: str) -> np.ndarray:
    """``[E]`` one metric of ``costs`` (``[E, M]``); ``'edp'`` is latency x energy."""
    if metric == "edp":
      if not self.has("edp"):
        raise ValueError(f"EDP needs latency_s and energy_j, the cost source has {self.metrics}: "
                         f"set --config.hw.accelerator")
      return costs[:, self.metrics.index("latency_s")] * costs[:, self.metrics.index("energy_j")]
    if metric not in self.metrics:
      raise ValueError(f"cost metric {metric!r} is not among {self.metrics}")
    return costs[:, self.metrics.index(metric)]


def network_costs(space: SearchSpace, source: CostSource) -> NetworkCosts:
  """``NetworkCosts`` of the derived network ``space`` under ``source``.

  Raises:
    ValueError: ``space`` is not derived (one op per slot, one width per group).
  """
  cumulative = discrete_exit_costs(space, source)      # checks that the space is derived
  num_classes = space.backbone.num_classes
  branches = []
  for branch, (bits,) in zip(space.branches, space.branch_bits):
    sigs = branch.entry_signatures(bits)
    width = branch.base_width
    for s, (name,) in enumerate(branch.slot_ops):
      sigs += branch.op_signatures(s, name, width, bits)
      width = parse_op(name).out_width(width, branch.base_width)
    sigs += branch.classifier_signatures(width, num_classes, bits)
    branches.append(total_cost(sigs, source))
  metrics = tuple(source.metrics)
  branch = np.stack(branches) if branches else np.zeros((0, len(metrics)))
  backbone = cumulative - np.cumsum(np.concatenate([branch, np.zeros((1, len(metrics)))]), axis=0)
  return NetworkCosts(metrics, cumulative, branch, backbone)


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
    """``[E-1]`` each early exit's branch (for pruning); None for EDP (not additive)."""
    return None if self.weights is None else self.costs.branch @ self.weights


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
    reference = float(static.column(static.cumulative, metric)[-1])
    return ObjectiveCosts(metric, costs, weights, reference, note)
  if objective == "weighted":
    given = dict(metric_weights or {})
    weights = np.array([float(given.get(m, 0.0)) / max(float(static.cumulative[-1, i]), 1e-30)
                        for i, m in enumerate(costs.metrics)])
    missing = sorted(m for m, w in given.items() if w and m not in costs.metrics)
    if missing:
      note = f"loss.metric_weights names metrics this run does not have ({missing}); they count 0"
    if not np.any(weights > 0):
      raise ValueError("hw.objective='weighted' with no positive loss.metric_weights entry: give "
                       f"a weight to at least one metric of {costs.metrics}")
    return ObjectiveCosts("weighted", costs, weights, float(static.cumulative[-1] @ weights), note)
  raise ValueError(f"unknown hw.objective {objective!r}; use 'macs', 'latency', 'energy', 'edp' "
                   f"or 'weighted'")
