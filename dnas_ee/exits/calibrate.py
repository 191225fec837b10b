"""Exit-threshold calibration on cached confidences (reference B's adaptive tuning).

After retraining, run the derived network once over a calibration split that the
weights never trained on and cache, per sample ``i`` and exit ``j`` (early exits in
order, then the final exit):

- ``conf[i, j]``: the exit's confidence (``dnas_ee.exits.confidence``),
- ``correct[i, j]``: whether the exit's prediction is right,
- ``cum_cost[j]``: the cost of a sample that leaves at exit ``j``.

Exit rule. A sample leaves at the first exit ``j`` with ``conf[i, j] >= tau[j]``. The
final exit has ``tau = -inf`` and always fires; ``tau = +inf`` disables an early exit.

Cost model. ``cum_cost[j]`` is everything a sample leaving at ``j`` paid: the backbone
up to exit ``j``, exit ``j``'s own branch, and every earlier branch that was evaluated
and rejected on the way. The expected cost of a setting is the mean over samples,
``sum_j rate_j * cost_j``. ``cum_cost`` need not be monotone. Without ``branch_cost``
a disabled exit still pays its branch (the network is deployed as is, the exit only
never fires). With ``branch_cost`` (``[E-1]``, each early exit's branch alone) the
network is deployed *pruned*: every early exit that fires for no calibration sample
(a *dead* exit; every ``+inf`` one, and any finite one shadowed by earlier exits) is
removed, so

    cost_j = cum_cost[j] - sum_{k < j, k dead} branch_cost[k].

The returned thresholds of a pruned calibration set dead exits to ``+inf``, so the
settings reproduce the reported cost on any data.

Search. Every early exit takes its threshold from a candidate list (``+inf`` plus
quantiles of its confidences, ``candidate_thresholds``). When the cartesian product
of the lists has at most ``exhaustive_limit`` settings, all of them are evaluated,
vectorized and exactly (for each setting of exits ``0..E-3``, every candidate of the
last early exit at once, from cumulative sums over the samples sorted by that exit's
confidence), and the optimum over the grid is exact. Larger grids use the
approximate search of ``SearchOptions``: block coordinate descent, see there for
what it guarantees.

Ties. Accuracies are compared as integer counts of correct samples; costs within a
relative ``1e-9`` of the largest ``|cum_cost|`` count as equal; remaining ties go
(in the exact search) to the setting first in grid order (candidates in descending
order, ``+inf`` first, exit 0 the slowest-varying), i.e. towards higher thresholds on
earlier exits.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np

MODES = ("accuracy_floor", "budget")
_COST_RTOL = 1e-9
_CHUNK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------- checks


def _check_conf(conf) -> np.ndarray:
  """Validated ``[n, E]`` float64 confidences."""
  conf = np.asarray(conf, dtype=np.float64)
  if conf.ndim != 2 or conf.shape[0] < 1 or conf.shape[1] < 1:
    raise ValueError(f"conf must be a [n, E] array with n >= 1 samples and E >= 1 exits, got shape "
                     f"{conf.shape}")
  if not np.all(np.isfinite(conf)):
    bad = np.argwhere(~np.isfinite(conf))[0]
    raise ValueError(f"conf has a non-finite value at sample {bad[0]}, exit {bad[1]}; compute the "
                     f"confidences with dnas_ee.exits.confidence (finite for any finite logits)")
  return conf


def _check_data(conf, correct, cum_cost, branch_cost=None):
  """Validated ``(conf, correct, cum_cost, branch_cost)`` as float64/bool arrays."""
  conf = _check_conf(conf)
  correct = np.asarray(correct)
  if correct.shape != conf.shape:
    raise ValueError(f"correct must have the shape of conf {conf.shape}, got {correct.shape}")
  if correct.dtype != bool:
    if not np.all((correct == 0) | (correct == 1)):
      raise ValueError("correct must be boolean (or 0/1): whether exit j's prediction is right")
    correct = correct.astype(bool)
  _, num_exits = conf.shape
  cum_cost = _check_costs(cum_cost, (num_exits,), "cum_cost", "[E], one per exit, final last")
  if branch_cost is not None:
    branch_cost = _check_costs(branch_cost, (num_exits - 1,), "branch_cost",
                               "[E-1], one per early exit")
    if np.any(branch_cost < 0):
      raise ValueError("branch_cost must be >= 0: the cost of each early exit's branch alone")
  return conf, correct, cum_cost, branch_cost


def _check_costs(values, shape, name, what) -> np.ndarray:
  values = np.asarray(values, dtype=np.float64)
  if values.shape != shape:
    raise ValueError(f"{name} must have shape {what} = {shape}, got {values.shape}")
  if not np.all(np.isfinite(values)):
    raise ValueError(f"{name} must be finite, got {values}")
  return values


def _check_thresholds(thresholds, num_exits: int) -> np.ndarray:
  """Early-exit thresholds ``[E-1]`` from ``[E-1]`` or ``[E]`` (final must be -inf)."""
  tau = np.asarray(thresholds, dtype=np.float64).reshape(-1)
  if tau.shape[0] == num_exits:
    if tau[-1] != -np.inf:
      raise ValueError(f"the final exit always fires, so its threshold must be -inf, got "
                       f"{tau[-1]}; pass the E-1 early-exit thresholds only, or -inf last")
    tau = tau[:-1]
  if tau.shape[0] != num_exits - 1:
    raise ValueError(f"expected {num_exits - 1} early-exit thresholds (or {num_exits} with a "
                     f"final -inf), got {tau.shape[0]}")
  if np.any(np.isnan(tau)):
    raise ValueError(f"thresholds must not be NaN (use +inf to disable an exit), got {tau}")
  return tau


def _check_candidates(candidates, num_exits: int) -> list[np.ndarray]:
  """Per early exit, its unique candidate thresholds in descending order."""
  if len(candidates) != num_exits - 1:
    raise ValueError(f"candidates must hold one list per early exit ({num_exits - 1}), got "
                     f"{len(candidates)}")
  out = []
  for k, cand in enumerate(candidates):
    cand = np.asarray(cand, dtype=np.float64).reshape(-1)
    if cand.size == 0 or np.any(np.isnan(cand)):
      raise ValueError(f"candidates for exit {k} must be a non-empty list without NaN (+inf "
                       f"disables the exit), got {cand}")
    out.append(np.unique(cand)[::-1].copy())
  return out


# --------------------------------------------------------------------------- evaluation


def _assign(conf: np.ndarray, settings: np.ndarray) -> np.ndarray:
  """Exit taken ``[m, n]`` by each sample under each setting ``[m, E-1]``."""
  num_exits = conf.shape[1]
  exits = np.full((settings.shape[0], conf.shape[0]), num_exits - 1, dtype=np.int32)
  for k in range(num_exits - 2, -1, -1):
    exits = np.where(conf[None, :, k] >= settings[:, k, None], np.int32(k), exits)
  return exits


def _tally(exits: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Samples ``[m, E]`` and correct samples ``[m, E]`` leaving at each exit."""
  m, n = exits.shape
  num_exits = correct.shape[1]
  flat = (exits + num_exits * np.arange(m, dtype=np.int64)[:, None]).reshape(-1)
  hit = correct[np.arange(n)[None, :], exits].reshape(-1)
  counts = np.bincount(flat, minlength=m * num_exits).reshape(m, num_exits)
  hits = np.bincount(flat[hit], minlength=m * num_exits).reshape(m, num_exits)
  return counts, hits


def _evaluate_direct(conf, correct, settings) -> tuple[np.ndarray, np.ndarray]:
  """``_tally`` of arbitrary settings ``[m, E-1]``, in chunks."""
  n, num_exits = conf.shape
  chunk = max(1, _CHUNK_ELEMENTS // n)
  counts = np.empty((settings.shape[0], num_exits), np.int64)
  hits = np.empty_like(counts)
  for s in range(0, settings.shape[0], chunk):
    counts[s:s + chunk], hits[s:s + chunk] = _tally(_assign(conf, settings[s:s + chunk]), correct)
  return counts, hits


def _masked_cumsum_at(mask: np.ndarray, pos: np.ndarray) -> np.ndarray:
  """``mask[:, :p].sum(1)`` for every ``p`` in ``pos``: ``[c, len(pos)]``."""
  cs = np.cumsum(mask, axis=1, dtype=np.int64)
  return np.where(pos[None, :] > 0, cs[:, np.maximum(pos - 1, 0)], 0)


def _sweep(conf, correct, base: np.ndarray, k: int, cand: np.ndarray):
  """Tallies of every setting ``base`` [c, E-1] with exit k's threshold in ``cand``.

  Column ``k`` of ``base`` is ignored. The samples that fire at ``k`` for a threshold
  are a prefix of the samples sorted by ``conf[:, k]`` (descending), so one cumulative
  sum per destination serves all candidates. Returns counts and hits ``[c, C, E]``.
  """
  n, num_exits = conf.shape
  c, num_cand = base.shape[0], cand.shape[0]
  before = np.full((c, n), -1, dtype=np.int32)            # first exit < k that fires
  for j in range(k - 1, -1, -1):
    before = np.where(conf[None, :, j] >= base[:, j, None], np.int32(j), before)
  after = np.full((c, n), num_exits - 1, dtype=np.int32)  # where a reject at k goes
  for j in range(num_exits - 2, k, -1):
    after = np.where(conf[None, :, j] >= base[:, j, None], np.int32(j), after)
  order = np.argsort(-conf[:, k], kind="stable")
  pos = n - np.searchsorted(conf[order[::-1], k], cand, side="left")  # conf >= cand
  counts = np.zeros((c, num_cand, num_exits), np.int64)
  hits = np.zeros_like(counts)
  for j in range(k):
    at_j = before == j
    counts[:, :, j] = at_j.sum(1)[:, None]
    hits[:, :, j] = (at_j & correct[None, :, j]).sum(1)[:, None]
  reach = (before < 0)[:, order]
  after = after[:, order]
  ok = correct[order]
  counts[:, :, k] = _masked_cumsum_at(reach, pos)
  hits[:, :, k] = _masked_cumsum_at(reach & ok[None, :, k], pos)
  for j in range(k + 1, num_exits):
    at_j = reach & (after == j)
    hit_j = at_j & ok[None, :, j]
    counts[:, :, j] = at_j.sum(1)[:, None] - _masked_cumsum_at(at_j, pos)
    hits[:, :, j] = hit_j.sum(1)[:, None] - _masked_cumsum_at(hit_j, pos)
  return counts, hits


def _grid(conf, correct, candidates: list[np.ndarray]):
  """Tallies of the whole cartesian product, in ``itertools.product`` order."""
  n, num_exits = conf.shape
  if num_exits == 1:
    return np.zeros((1, 0)), np.array([[n]]), correct[:, :1].sum(0, keepdims=True).astype(np.int64)
  shape = tuple(len(c) for c in candidates)
  total = math.prod(shape)
  settings = np.stack([candidates[k][ix] for k, ix in enumerate(
      np.unravel_index(np.arange(total), shape))], axis=1)
  k = num_exits - 2
  num_base = total // shape[k]
  base = settings[::shape[k]]
  chunk = max(1, _CHUNK_ELEMENTS // n)
  counts = np.empty((num_base, shape[k], num_exits), np.int64)
  hits = np.empty_like(counts)
  for s in range(0, num_base, chunk):
    counts[s:s + chunk], hits[s:s + chunk] = _sweep(conf, correct, base[s:s + chunk], k,
                                                    candidates[k])
  return settings, counts.reshape(total, num_exits), hits.reshape(total, num_exits)


def _exit_costs(counts: np.ndarray, cum_cost: np.ndarray, branch_cost) -> np.ndarray:
  """Cost ``[m, E]`` of leaving at each exit under each setting (pruned if asked)."""
  if branch_cost is None:
    return np.broadcast_to(cum_cost, counts.shape)
  removed = np.zeros(counts.shape)
  removed[:, 1:] = np.cumsum((counts[:, :-1] == 0) * branch_cost, axis=1)
  return cum_cost[None, :] - removed


def _expected_cost(counts, cum_cost, branch_cost) -> np.ndarray:
  n = counts[0].sum()
  return (counts * _exit_costs(counts, cum_cost, branch_cost)).sum(1) / n


def exit_assignment(conf, thresholds) -> np.ndarray:
  """Index of the exit each sample takes: the first ``j`` with ``conf[i, j] >= tau[j]``.

  Args:
    conf: float ``[n, E]`` confidences, final exit last.
    thresholds: ``[E-1]`` early-exit thresholds, or ``[E]`` with a final ``-inf``;
      ``+inf`` disables an exit.

  Returns:
    int ``[n]`` exit indices in ``0..E-1``.

  Example:
    >>> exit_assignment(np.array([[0.9, 0.2], [0.3, 0.8]]), [0.5]).tolist()
    [0, 1]
  """
  conf = _check_conf(conf)
  tau = _check_thresholds(thresholds, conf.shape[1])
  return _assign(conf, tau[None]).astype(np.int64)[0]


def evaluate_thresholds(conf, correct, cum_cost, thresholds, branch_cost=None) -> dict:
  """Accuracy, expected cost and exit distribution of one threshold setting.

  Args:
    conf: float ``[n, E]`` confidences.
    correct: bool ``[n, E]``.
    cum_cost: float ``[E]``, cost of leaving at each exit (module docstring).
    thresholds: ``[E-1]`` or ``[E]`` (final ``-inf``).
    branch_cost: optional ``[E-1]``; prune dead exits' branches from the cost.

  Returns:
    dict with ``accuracy`` (float), ``expected_cost`` (float), ``exit_rates``
    (``[E]``, sums to 1) and ``dead_exits`` (early exits that fire for no sample).

  Example:
    >>> r = evaluate_thresholds([[0.9, 0.2], [0.3, 0.8]], [[1, 1], [0, 1]], [1.0, 3.0], [0.5])
    >>> r["accuracy"], r["expected_cost"]
    (1.0, 2.0)
  """
  conf, correct, cum_cost, branch_cost = _check_data(conf, correct, cum_cost, branch_cost)
  tau = _check_thresholds(thresholds, conf.shape[1])
  counts, hits = _tally(_assign(conf, tau[None]), correct)
  n = conf.shape[0]
  return dict(accuracy=float(hits.sum() / n),
              expected_cost=float(_expected_cost(counts, cum_cost, branch_cost)[0]),
              exit_rates=counts[0] / n,
              dead_exits=[int(k) for k in np.flatnonzero(counts[0, :-1] == 0)])


def candidate_thresholds(conf, num_candidates: int) -> list[np.ndarray]:
  """Per early exit: ``+inf`` (disabled) plus quantiles of that exit's confidences.

  The quantile levels are ``linspace(0, 1, num_candidates)`` (``[0]`` for one), taken
  as observed values (``method='lower'``) so that ``>=`` splits the samples exactly;
  level 0 (the smallest confidence) makes the exit take every sample that reaches it,
  level 1 only the most confident one(s). Duplicates are dropped.

  Args:
    conf: float ``[n, E]``; the final column is not used.
    num_candidates: finite values per exit (before removing duplicates), >= 1.

  Returns:
    ``E-1`` arrays in descending order, each starting with ``+inf``.

  Example:
    >>> c = candidate_thresholds(np.array([[0.1, 0.], [0.5, 0.], [0.9, 0.]]), 3)
    >>> c[0].tolist()
    [inf, 0.9, 0.5, 0.1]
  """
  conf = _check_conf(conf)
  if int(num_candidates) != num_candidates or num_candidates < 1:
    raise ValueError(f"num_candidates must be an integer >= 1, got {num_candidates}")
  levels = np.linspace(0.0, 1.0, int(num_candidates))
  out = []
  for k in range(conf.shape[1] - 1):
    q = np.quantile(conf[:, k], levels, method="lower")
    out.append(np.concatenate([[np.inf], np.unique(q)[::-1]]))
  return out


# --------------------------------------------------------------------------- results


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


# --------------------------------------------------------------------------- search


@dataclasses.dataclass(frozen=True)
class SearchOptions:
  """The approximate search, used when the grid exceeds ``exhaustive_limit``.

  1. Evaluate the all-disabled setting and ``random_samples`` settings drawn
     uniformly from the grid (seeded).
  2. From the all-disabled setting and the best ``num_starts - 1`` random ones, run
     block coordinate descent: sweep over all blocks of ``block_size`` early exits
     (pairs by default); for each block evaluate every combination of its
     candidates exactly with the other exits fixed, and move to the best one if it
     is strictly better. Stop when a sweep changes nothing or after ``max_sweeps``.
  3. Polish the best end point the same way with blocks of ``polish_block_size``
     exits, if one sweep of those evaluates at most ``polish_limit`` settings.
  4. Return the polished (or best) end point.

  The objective is lexicographic: (constraint violation, then the mode's objective,
  then its tie-break), so infeasible settings move towards feasibility first.

  Guarantees: the result is never worse than the all-disabled setting, nor (with
  ``num_starts >= 2``) than any random sample, so it is feasible whenever one of those
  is (always, in accuracy-floor mode with ``+inf`` among each exit's candidates);
  if the descent converged within ``max_sweeps``, no change of the thresholds of any
  ``block_size`` exits (``polish_block_size`` if polished) improves it; with at most
  that many early exits it is exact. With more it may miss the grid optimum (a local
  optimum that needs more exits to change together). Measured on synthetic
  correlated cases (n = 50..500, 4 early exits x 9 candidates, 5 x 7) the defaults
  found the grid optimum in 98-99% of them; misses were a few % of cost (or about
  one accuracy point in budget mode). Among settings with equal objective the choice
  need not follow grid order.

  The ``ParetoFront`` of an approximate search (``exact=False``) holds the random
  sample and, from each block evaluated, its non-dominated settings and its best:
  its Pareto set is that of every setting evaluated, dense only near the result.
  """
  seed: int = 0
  num_starts: int = 8
  random_samples: int = 2048
  max_sweeps: int = 20
  block_size: int = 2
  polish_block_size: int = 3
  polish_limit: int = 50_000

  def __post_init__(self):
    if self.num_starts < 1 or self.max_sweeps < 1 or self.random_samples < 0:
      raise ValueError("SearchOptions needs num_starts >= 1, max_sweeps >= 1, random_samples >= 0")
    if self.block_size < 1 or self.polish_block_size < 0:
      raise ValueError(f"SearchOptions needs block_size >= 1 and polish_block_size >= 0 (0: no "
                       f"polish), got {self.block_size} and {self.polish_block_size}")


class _Archive:
  """Every setting evaluated by the approximate search (candidate indices)."""

  def __init__(self):
    self.index, self.counts, self.hits = [], [], []

  def add(self, index, counts, hits):
    self.index.append(index)
    self.counts.append(counts)
    self.hits.append(hits)

  def arrays(self):
    index = np.concatenate(self.index)
    _, first = np.unique(index, axis=0, return_index=True)
    first = np.sort(first)
    return (index[first], np.concatenate(self.counts)[first], np.concatenate(self.hits)[first])


def _keys(mode: str, num_correct, cost, target, scale) -> list[np.ndarray]:
  """Lexicographic objective, most significant first; smaller is better."""
  cost_key = np.round(cost / scale / _COST_RTOL)
  if mode == "accuracy_floor":
    return [np.maximum(0, target - num_correct), cost_key, -num_correct]
  over = np.maximum(0.0, cost - target * (1 + _COST_RTOL))
  return [np.round(over / scale / _COST_RTOL), -num_correct, cost_key]


@dataclasses.dataclass(frozen=True, eq=False)
class _Objective:
  """The lexicographic objective of one calibration, on tallies."""
  mode: str
  target: float
  cum_cost: np.ndarray
  branch_cost: np.ndarray | None
  scale: float

  def __call__(self, counts, hits) -> list[np.ndarray]:
    cost = _expected_cost(counts, self.cum_cost, self.branch_cost)
    return _keys(self.mode, hits.sum(1), cost, self.target, self.scale)

  def pareto(self, counts, hits) -> np.ndarray:
    cost = _expected_cost(counts, self.cum_cost, self.branch_cost)
    return _pareto_indices(hits.sum(1), cost, self.scale)


def _best(keys: list[np.ndarray]) -> int:
  return int(np.lexsort(keys[::-1])[0])


def _settings(candidates, index: np.ndarray) -> np.ndarray:
  return np.stack([candidates[k][index[:, k]] for k in range(index.shape[1])], axis=1) \
      if index.shape[1] else np.zeros((index.shape[0], 0))


def _block_tallies(conf, correct, candidates, current, block):
  """Candidate indices and tallies of every setting that differs from ``current`` only
  on the exits in ``block`` (the first one swept, the others enumerated)."""
  k, rest = block[0], list(block[1:])
  grid = np.stack(np.unravel_index(np.arange(math.prod(len(candidates[j]) for j in rest)),
                                   [len(candidates[j]) for j in rest]), axis=1) \
      if rest else np.zeros((1, 0), np.int64)
  base_index = np.repeat(current[None], len(grid), axis=0)
  base_index[:, rest] = grid
  counts, hits = _sweep(conf, correct, _settings(candidates, base_index), k, candidates[k])
  index = np.repeat(base_index, len(candidates[k]), axis=0)
  index[:, k] = np.tile(np.arange(len(candidates[k])), len(base_index))
  return index, counts.reshape(len(index), -1), hits.reshape(len(index), -1)


def _descend(data, candidates, start, objective, block_size, max_sweeps, archive):
  """Block coordinate descent from candidate indices ``start``; returns the end point.

  Only each batch's non-dominated settings (and the best one) go to the archive: the
  Pareto front of the archive is that of every setting evaluated.
  """
  conf, correct = data
  current = start.copy()
  blocks = list(itertools.combinations(range(len(candidates)),
                                       min(block_size, len(candidates))))
  for _ in range(max_sweeps):
    changed = False
    for block in blocks:
      index, counts, hits = _block_tallies(conf, correct, candidates, current, block)
      keys = objective(counts, hits)
      best = _best(keys)
      here = int(np.flatnonzero(np.all(index == current, axis=1))[0])
      keep = np.union1d(objective.pareto(counts, hits), [best])
      archive.add(index[keep], counts[keep], hits[keep])
      if any(key[best] != key[here] for key in keys):
        current, changed = index[best].copy(), True
    if not changed:
      break
  return current


def _approximate(conf, correct, candidates, objective, options):
  """The search of ``SearchOptions``: archive arrays and the index of the result."""
  rng = np.random.default_rng(options.seed)
  sizes = np.array([len(c) for c in candidates])
  disabled = np.array([int(np.argmax(c)) for c in candidates])
  sample = np.concatenate([disabled[None], rng.integers(0, sizes, (options.random_samples,
                                                                   len(sizes)))])
  archive = _Archive()
  counts, hits = _evaluate_direct(conf, correct, _settings(candidates, sample))
  archive.add(sample, counts, hits)
  keys = objective(counts, hits)
  order = np.lexsort(keys[::-1])
  starts = [disabled]
  for i in order:
    if len(starts) >= options.num_starts:
      break
    if not any(np.array_equal(sample[i], s) for s in starts):
      starts.append(sample[i])
  data = (conf, correct)
  ends = [_descend(data, candidates, s, objective, options.block_size, options.max_sweeps,
                   archive) for s in starts]
  index, counts, hits = archive.arrays()
  keys = objective(counts, hits)
  end_rows = [int(np.flatnonzero(np.all(index == e, axis=1))[0]) for e in ends]
  best = end_rows[_best([key[end_rows] for key in keys])]
  polish = options.polish_block_size
  polish_sweep = sum(math.prod(sizes[list(b)]) for b in itertools.combinations(
      range(len(sizes)), min(polish, len(sizes))))
  if polish > options.block_size and len(sizes) > options.block_size and \
      polish_sweep <= options.polish_limit:
    polished = _descend(data, candidates, index[best], objective, options.polish_block_size,
                        options.max_sweeps, archive)
    index, counts, hits = archive.arrays()
    best = int(np.flatnonzero(np.all(index == polished, axis=1))[0])
  return _settings(candidates, index), counts, hits, best


def _pareto_indices(num_correct: np.ndarray, cost: np.ndarray, scale: float) -> np.ndarray:
  """Non-dominated settings (max correct, min cost) by increasing cost."""
  cost_key = np.round(cost / scale / _COST_RTOL)
  order = np.lexsort((np.arange(len(cost)), -num_correct, cost_key))
  ranked = num_correct[order]
  previous_best = np.maximum.accumulate(np.concatenate([[-1], ranked[:-1]]))
  return order[ranked > previous_best].astype(np.int64)


def _front(settings, counts, hits, cum_cost, branch_cost, exact) -> ParetoFront:
  n = int(counts[0].sum())
  cost = _expected_cost(counts, cum_cost, branch_cost)
  num_correct = hits.sum(1)
  return ParetoFront(thresholds=settings, accuracy=num_correct / n, cost=cost,
                     exit_rates=counts / n,
                     pareto=_pareto_indices(num_correct, cost, _scale(cum_cost)),
                     exact=exact, num_samples=n)


def _scale(cum_cost: np.ndarray) -> float:
  scale = float(np.max(np.abs(cum_cost)))
  return scale if scale > 0 else 1.0


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
  scale = _scale(cum_cost)
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
                             options: SearchOptions | None = None) -> Calibration:
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
    return final_correct - math.floor(n * max_drop / 100 + 1e-9)

  best, front, target, final_correct, final_cost = _calibrate(
      conf, correct, cum_cost, candidates, branch_cost, num_candidates, exhaustive_limit,
      options, "accuracy_floor", target_of)
  n = front.num_samples
  floor = final_correct / n - max_drop / 100
  if best is None:
    raise ValueError(f"no threshold setting reaches the accuracy floor {floor:.4f} (final exit "
                     f"alone {final_correct / n:.4f} minus {max_drop} points); the best found is "
                     f"{front.accuracy.max():.4f}: add +inf (disabled) to every exit's "
                     f"candidates or raise max_drop")
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
