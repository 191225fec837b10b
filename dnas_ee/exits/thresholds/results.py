"""Results of a threshold search (``ParetoFront``, ``Calibration``) and thresholds in JSON."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np


def thresholds_to_json(values) -> list:
  """Thresholds (any nesting) as JSON-safe lists: ``+inf`` -> ``"inf"``, ``-inf`` -> ``"-inf"``.

  Strings rather than ``null`` so that both infinities survive; ``float(v)`` reads
  every entry back in plain Python.

  Example:
    >>> thresholds_to_json([0.5, np.inf, -np.inf])
    [0.5, 'inf', '-inf']
  """
  def conv(x):
    if isinstance(x, list):
      return [conv(v) for v in x]
    if math.isinf(x):
      return "inf" if x > 0 else "-inf"
    if math.isnan(x):
      raise ValueError("thresholds must not be NaN")
    return float(x)
  return conv(np.asarray(values, dtype=np.float64).tolist())


def thresholds_from_json(values) -> np.ndarray:
  """Inverse of ``thresholds_to_json``; also reads ``"+inf"``, ``"Infinity"`` and ``null``
  (a disabled exit, ``+inf``).

  Example:
    >>> thresholds_from_json([0.5, "inf", "-inf"]).tolist()
    [0.5, inf, -inf]
  """
  def conv(x):
    if isinstance(x, list):
      return [conv(v) for v in x]
    if isinstance(x, str):
      key = x.strip().lower()
      if key in ("inf", "+inf", "infinity", "+infinity"):
        return math.inf
      if key in ("-inf", "-infinity"):
        return -math.inf
      raise ValueError(f"unknown threshold string {x!r}; use a number, 'inf' or '-inf'")
    if x is None:
      return math.inf
    return float(x)
  return np.asarray(conv(list(values)), dtype=np.float64)


@dataclasses.dataclass(frozen=True, eq=False)
class ParetoFront:
  """Evaluated threshold settings and the non-dominated ones.

  Attributes:
    thresholds: ``[m, E-1]`` early-exit thresholds of each evaluated setting.
    accuracy: ``[m]`` calibration accuracy (fraction).
    cost: ``[m]`` expected cost (pruned if the search was given ``branch_cost``).
    exit_rates: ``[m, E]`` fraction of samples leaving at each exit.
    pareto: indices of the non-dominated settings (max accuracy, min cost), by
      increasing cost (and accuracy); one representative per (accuracy, cost) point.
    exact: True when every setting of the candidate grid was evaluated.
    num_samples: calibration samples ``n``.
  """
  thresholds: np.ndarray
  accuracy: np.ndarray
  cost: np.ndarray
  exit_rates: np.ndarray
  pareto: np.ndarray
  exact: bool
  num_samples: int

  def to_dict(self, which: str = "pareto") -> dict:
    """JSON-ready dict holding ``'all'`` evaluated settings or only the ``'pareto'`` ones."""
    if which == "all":
      keep, pareto = np.arange(len(self.cost)), self.pareto
    elif which == "pareto":
      keep, pareto = self.pareto, np.arange(len(self.pareto))
    else:
      raise ValueError(f"which must be 'all' or 'pareto', got {which!r}")
    return dict(thresholds=thresholds_to_json(self.thresholds[keep]),
                accuracy=self.accuracy[keep].tolist(), cost=self.cost[keep].tolist(),
                exit_rates=self.exit_rates[keep].tolist(), pareto=pareto.tolist(),
                exact=bool(self.exact), num_samples=int(self.num_samples),
                num_exits=int(self.exit_rates.shape[1]))

  @classmethod
  def from_dict(cls, data: dict) -> ParetoFront:
    """Inverse of ``to_dict``."""
    accuracy = np.asarray(data["accuracy"], dtype=np.float64)
    m, num_exits = len(accuracy), int(data["num_exits"])
    return cls(thresholds=thresholds_from_json(data["thresholds"]).reshape(m, num_exits - 1),
               accuracy=accuracy, cost=np.asarray(data["cost"], dtype=np.float64),
               exit_rates=np.asarray(data["exit_rates"], dtype=np.float64).reshape(m, num_exits),
               pareto=np.asarray(data["pareto"], dtype=np.int64), exact=bool(data["exact"]),
               num_samples=int(data["num_samples"]))


@dataclasses.dataclass(frozen=True, eq=False)
class Calibration:
  """Chosen thresholds and what they achieve on the calibration split.

  Attributes:
    thresholds: ``[E]``, final ``-inf``; ``+inf`` disables an early exit.
    accuracy: calibration accuracy (fraction).
    expected_cost: expected cost per sample (same units as ``cum_cost``).
    exit_rates: ``[E]`` fraction of samples leaving at each exit.
    dead_exits: early exits that fire for no calibration sample.
    mode: ``'accuracy_floor'`` or ``'budget'``.
    parameter: ``max_drop`` (percentage points) or ``budget`` (fraction of
      ``reference_cost``).
    target: the constraint: the accuracy floor (fraction) or the cost limit.
    reference_cost: the static backbone cost (budget mode), else None.
    final_only_accuracy: accuracy of the final exit alone (all early exits off).
    final_only_cost: cost of that setting (pruned if ``pruned``).
    pruned: whether dead branches were removed from the cost (``branch_cost``).
    front: the evaluated settings and their Pareto front.
  """
  thresholds: np.ndarray
  accuracy: float
  expected_cost: float
  exit_rates: np.ndarray
  dead_exits: list
  mode: str
  parameter: float
  target: float
  reference_cost: float | None
  final_only_accuracy: float
  final_only_cost: float
  pruned: bool
  front: ParetoFront

  def to_dict(self, front: str = "pareto") -> dict:
    """JSON-ready dict; ``front`` is ``'all'``, ``'pareto'`` or ``'none'``."""
    data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
    data["thresholds"] = thresholds_to_json(self.thresholds)
    data["exit_rates"] = np.asarray(self.exit_rates).tolist()
    data["dead_exits"] = [int(k) for k in self.dead_exits]
    data["front"] = None if front == "none" else self.front.to_dict(front)
    for key in ("accuracy", "expected_cost", "parameter", "target", "final_only_accuracy",
                "final_only_cost"):
      data[key] = float(data[key])
    return data

  def to_json(self, front: str = "pareto", indent: int | None = 1) -> str:
    """Strict JSON text (no ``Infinity``); see ``to_dict`` for ``front``.

    Example:
      >>> text = calibration.to_json()          # doctest: +SKIP
      >>> Calibration.from_json(text).thresholds  # doctest: +SKIP
    """
    return json.dumps(self.to_dict(front), indent=indent, allow_nan=False)

  @classmethod
  def from_dict(cls, data: dict) -> Calibration:
    """Inverse of ``to_dict`` (a ``front`` saved as ``'none'`` comes back empty)."""
    names = {f.name for f in dataclasses.fields(cls)}
    if set(data) != names:
      raise ValueError(f"not a Calibration dict: missing {sorted(names - set(data))}, unknown "
                       f"{sorted(set(data) - names)}")
    data = dict(data)
    data["thresholds"] = thresholds_from_json(data["thresholds"])
    data["exit_rates"] = np.asarray(data["exit_rates"], dtype=np.float64)
    num_exits = len(data["thresholds"])
    data["front"] = (ParetoFront.from_dict(data["front"]) if data["front"] is not None else
                     ParetoFront(np.zeros((0, num_exits - 1)), np.zeros(0), np.zeros(0),
                                 np.zeros((0, num_exits)), np.zeros(0, np.int64), False,
                                 0))
    return cls(**data)

  @classmethod
  def from_json(cls, text: str) -> Calibration:
    """Inverse of ``to_json``."""
    return cls.from_dict(json.loads(text))
