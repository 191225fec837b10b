"""The threshold search entry points: ``pareto_front``, ``calibrate_accuracy_floor``,
``calibrate_budget`` (exact grid when it is small enough, else ``SearchOptions``)."""
from __future__ import annotations

import math

import numpy as np

from dnas_ee.exits.thresholds.checks import _check_candidates, _check_data
from dnas_ee.exits.thresholds.descent import SearchOptions, _approximate, _best, _Objective, _settings
from dnas_ee.exits.thresholds.grid import (
    _evaluate_direct, _expected_cost, _grid, _pareto_indices, candidate_thresholds, cost_scale)
from dnas_ee.exits.thresholds.results import Calibration, ParetoFront

MODES = ("accuracy_floor", "budget")


def _front(settings, counts, hits, cum_cost, branch_cost, exact) -> ParetoFront:
  n = int(counts[0].sum())
  cost = _expected_cost(counts, cum_cost, branch_cost)
  num_correct = hits.sum(1)
  return ParetoFront(thresholds=settings, accuracy=num_correct / n, cost=cost,
                     exit_rates=counts / n,
                     pareto=_pareto_indices(num_correct, cost, cost_scale(cum_cost)),
                     exact=exact, num_samples=n)


def _prepare(conf, correct, cum_cost, candidates, branch_cost, num_candidates):
  conf, correct, cum_cost, branch_cost = _check_data(conf, correct, cum_cost, branch_cost)
  if candidates is None:
    candidates = candidate_thresholds(conf, num_candidates)
  return conf, correct, cum_cost, branch_cost, _check_candidates(candidates, conf.shape[1])


def pareto_front(conf, correct, cum_cost, candidates=None, branch_cost=None, *,
                 exhaustive_limit: int = 200_000, num_candidates: int = 16,
                 seed: int = 0) -> ParetoFront:
  """Accuracy/cost of the candidate threshold grid and its Pareto front.

  Exact (every setting of the cartesian product) when the product has at most
  ``exhaustive_limit`` settings; otherwise the all-disabled setting plus
  ``exhaustive_limit`` settings drawn uniformly from the grid (``exact=False``).

  Args:
    conf, correct, cum_cost, branch_cost: as in ``evaluate_thresholds``.
    candidates: per early exit, its candidate thresholds (default:
      ``candidate_thresholds(conf, num_candidates)``).
    exhaustive_limit: the largest grid evaluated in full.
    num_candidates: used only when ``candidates`` is None.
    seed: for the sample of a grid too large to enumerate.

  Example:
    >>> conf = np.array([[0.9, 0.5], [0.4, 0.7]]); correct = np.ones((2, 2), bool)
    >>> f = pareto_front(conf, correct, [1.0, 2.0], [[np.inf, 0.4]])
    >>> f.cost[f.pareto].tolist()
    [1.0]
  """
  conf, correct, cum_cost, branch_cost, candidates = _prepare(
      conf, correct, cum_cost, candidates, branch_cost, num_candidates)
  total = math.prod(len(c) for c in candidates)
  if total <= exhaustive_limit or not candidates:
    settings, counts, hits = _grid(conf, correct, candidates)
    return _front(settings, counts, hits, cum_cost, branch_cost, exact=True)
  rng = np.random.default_rng(seed)
  sizes = np.array([len(c) for c in candidates])
  index = np.concatenate([np.array([[int(np.argmax(c)) for c in candidates]]),
                          rng.integers(0, sizes, (exhaustive_limit, len(sizes)))])
  index = index[np.sort(np.unique(index, axis=0, return_index=True)[1])]
  settings = _settings(candidates, index)
  counts, hits = _evaluate_direct(conf, correct, settings)
  return _front(settings, counts, hits, cum_cost, branch_cost, exact=False)


def _calibrate(conf, correct, cum_cost, candidates, branch_cost, num_candidates,
               exhaustive_limit, options, mode, target_of):
  """Shared search; ``target_of(n, final_correct, final_only_cost)`` -> target."""
  conf, correct, cum_cost, branch_cost, candidates = _prepare(
      conf, correct, cum_cost, candidates, branch_cost, num_candidates)
  n = conf.shape[0]
  scale = cost_scale(cum_cost)
  final_counts = np.zeros((1, conf.shape[1]), np.int64)
  final_counts[0, -1] = n
  final_only_cost = float(_expected_cost(final_counts, cum_cost, branch_cost)[0])
  final_correct = int(correct[:, -1].sum())
  target = target_of(n, final_correct, final_only_cost)

  objective = _Objective(mode, target, cum_cost, branch_cost, scale)

  total = math.prod(len(c) for c in candidates)
  exact = total <= exhaustive_limit or not candidates
  if exact:
    settings, counts, hits = _grid(conf, correct, candidates)
    best = _best(objective(counts, hits))
  else:
    settings, counts, hits, best = _approximate(conf, correct, candidates, objective,
                                                options or SearchOptions())
  front = _front(settings, counts, hits, cum_cost, branch_cost, exact=exact)
  if objective(counts[best:best + 1], hits[best:best + 1])[0][0] > 0:
    return None, front, target, final_correct, final_only_cost
  return best, front, target, final_correct, final_only_cost


def _result(best, front, mode, parameter, target, reference_cost, final_correct,
            final_only_cost, pruned) -> Calibration:
  rates = front.exit_rates[best]
  dead = [int(k) for k in np.flatnonzero(rates[:-1] == 0)]
  tau = front.thresholds[best].copy()
  if pruned:
    tau[dead] = np.inf
  return Calibration(
      thresholds=np.concatenate([tau, [-np.inf]]), accuracy=float(front.accuracy[best]),
      expected_cost=float(front.cost[best]), exit_rates=rates.copy(), dead_exits=dead, mode=mode,
      parameter=float(parameter), target=float(target), reference_cost=reference_cost,
      final_only_accuracy=final_correct / front.num_samples, final_only_cost=final_only_cost,
      pruned=pruned, front=front)


def calibrate_accuracy_floor(conf, correct, cum_cost, *, max_drop: float, candidates=None,
                             branch_cost=None, num_candidates: int = 16,
                             exhaustive_limit: int = 200_000,
                             options: SearchOptions | None = None,
                             reference_correct: int | None = None) -> Calibration:
  """Cheapest thresholds whose accuracy stays within ``max_drop`` points of the final exit.

  Minimizes the expected cost subject to ``accuracy >= final_only_accuracy -
  max_drop / 100``, evaluated in whole samples: at most ``floor(n * max_drop / 100)``
  fewer correct samples than the final exit alone (1e-9 slack for rounding). Ties
  go to the higher accuracy, then to grid order (module docstring).

  Args:
    conf, correct, cum_cost, branch_cost: as in ``evaluate_thresholds``.
    max_drop: allowed accuracy drop in percentage points, in ``[0, 100]``.
    candidates: per early exit, candidate thresholds (default
      ``candidate_thresholds(conf, num_candidates)``).
    num_candidates: used only when ``candidates`` is None.
    exhaustive_limit: grids up to this size are searched exactly.
    options: the approximate search for larger grids (``SearchOptions``).
    reference_correct: correct samples of the reference network on the same split
      (the static network trained alone: the honest floor); None: the final exit.

  Returns:
    A ``Calibration`` with ``mode='accuracy_floor'``, ``parameter=max_drop``.

  Raises:
    ValueError: bad inputs, or no setting reaches the floor (only possible when some
      exit has no ``+inf`` candidate).

  Example:
    >>> cal = calibrate_accuracy_floor(conf, correct, cum_cost, max_drop=1.0)  # doctest: +SKIP
    >>> cal.thresholds, cal.expected_cost / reference_cost                   # doctest: +SKIP
  """
  if not (np.isfinite(max_drop) and 0 <= max_drop <= 100):
    raise ValueError(f"max_drop is an accuracy drop in percentage points in [0, 100], got "
                     f"{max_drop} (1.0 means one point, i.e. 0.01 in accuracy)")

  def target_of(n, final_correct, _):
    base = final_correct if reference_correct is None else int(reference_correct)
    return base - math.floor(n * max_drop / 100 + 1e-9)

  best, front, target, final_correct, final_cost = _calibrate(
      conf, correct, cum_cost, candidates, branch_cost, num_candidates, exhaustive_limit,
      options, "accuracy_floor", target_of)
  n = front.num_samples
  base = final_correct if reference_correct is None else int(reference_correct)
  floor = base / n - max_drop / 100
  if best is None:
    which = "final exit" if reference_correct is None else "static network"
    raise ValueError(f"no threshold setting reaches the accuracy floor {floor:.4f} ({which} "
                     f"alone {base / n:.4f} minus {max_drop} points); the best found is "
                     f"{front.accuracy.max():.4f}: raise max_drop, or add +inf (disabled) to "
                     f"every exit's candidates")
  return _result(best, front, "accuracy_floor", max_drop, floor, None, final_correct,
                 final_cost, branch_cost is not None)


def calibrate_budget(conf, correct, cum_cost, *, budget: float, reference_cost: float,
                     candidates=None, branch_cost=None, num_candidates: int = 16,
                     exhaustive_limit: int = 200_000,
                     options: SearchOptions | None = None) -> Calibration:
  """Most accurate thresholds whose expected cost is at most ``budget * reference_cost``.

  Ties go to the lower cost, then to grid order. The cost constraint has a relative
  slack of 1e-9.

  Args:
    conf, correct, cum_cost, branch_cost: as in ``evaluate_thresholds``.
    budget: allowed cost as a fraction of ``reference_cost`` (> 0; 0.5 = half).
    reference_cost: the static backbone's cost, from the caller (> 0).
    candidates, num_candidates, exhaustive_limit, options: as in
      ``calibrate_accuracy_floor``.

  Returns:
    A ``Calibration`` with ``mode='budget'``, ``parameter=budget``,
    ``target=budget * reference_cost``.

  Raises:
    ValueError: bad inputs, or no setting meets the budget (the message gives the
      lowest achievable cost ratio).

  Example:
    >>> cal = calibrate_budget(conf, correct, cum_cost, budget=0.6,
    ...                        reference_cost=static_macs)          # doctest: +SKIP
  """
  if not (np.isfinite(budget) and budget > 0):
    raise ValueError(f"budget is the allowed cost as a fraction of reference_cost (> 0), got "
                     f"{budget}")
  if not (np.isfinite(reference_cost) and reference_cost > 0):
    raise ValueError(f"reference_cost must be the static backbone's cost (> 0), got "
                     f"{reference_cost}")
  limit = budget * reference_cost
  best, front, target, final_correct, final_cost = _calibrate(
      conf, correct, cum_cost, candidates, branch_cost, num_candidates, exhaustive_limit,
      options, "budget", lambda *_: limit)
  if best is None:
    lowest = float(front.cost.min()) / reference_cost
    how = ("over the whole candidate grid" if front.exact else
           "the lowest the approximate search found")
    raise ValueError(f"no threshold setting meets the budget {budget} x reference_cost = "
                     f"{limit:.6g}: the lowest achievable cost ratio is {lowest:.4f} ({how}); "
                     f"raise budget to at least {lowest:.4f} or give lower candidate thresholds "
                     f"for the early exits")
  return _result(best, front, "budget", budget, limit, float(reference_cost), final_correct,
                 final_cost, branch_cost is not None)
