"""Exact tallies of threshold settings: one setting, a whole grid (vectorized sweeps),
candidates, and the expected cost with dead exits pruned."""
from __future__ import annotations

import math

import numpy as np

from dnas_ee.cost.network import pruned_exit_costs
from dnas_ee.exits.decision import assign_exits, first_exit
from dnas_ee.exits.thresholds.checks import _check_conf, _check_data, _check_thresholds

_CHUNK_ELEMENTS = 1 << 22
# Costs within this relative distance of the largest |cum_cost| count as equal.
_COST_RTOL = 1e-9


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
    counts[s:s + chunk], hits[s:s + chunk] = _tally(assign_exits(conf, settings[s:s + chunk]), correct)
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


def _factor_product(costs: np.ndarray, cum_cost: np.ndarray) -> np.ndarray:
  """``costs`` shaped as ``cum_cost`` (last axis ``F`` factors when it is ``[E, F]``) as one
  cost each: the product of the factors."""
  return costs if cum_cost.ndim == 1 else np.prod(costs, axis=-1)


def _exit_costs(counts: np.ndarray, cum_cost: np.ndarray, branch_cost) -> np.ndarray:
  """Cost ``[m, E]`` of leaving at each exit under each setting (dead exits pruned if
  ``branch_cost`` is given); ``[E, F]`` factors are pruned one by one, then multiplied."""
  if branch_cost is None:
    costs = np.broadcast_to(cum_cost, counts.shape + cum_cost.shape[1:])
  else:
    costs = pruned_exit_costs(cum_cost, branch_cost, counts[:, :-1] == 0)
  return _factor_product(costs, cum_cost)


def _expected_cost(counts, cum_cost, branch_cost) -> np.ndarray:
  n = counts[0].sum()
  return (counts * _exit_costs(counts, cum_cost, branch_cost)).sum(1) / n


def cost_scale(cum_cost: np.ndarray) -> float:
  """The largest ``|cost|`` of leaving at one exit, nothing pruned (ties are relative to it)."""
  cum_cost = np.asarray(cum_cost, np.float64)
  scale = float(np.max(np.abs(_factor_product(cum_cost, cum_cost))))
  return scale if scale > 0 else 1.0


def exit_assignment(conf, thresholds) -> np.ndarray:
  """Index of the exit each sample takes (``dnas_ee.exits.decision.first_exit``), with
  the confidences checked to be finite.

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
  return first_exit(_check_conf(conf), thresholds)


def evaluate_thresholds(conf, correct, cum_cost, thresholds, branch_cost=None) -> dict:
  """Accuracy, expected cost and exit distribution of one threshold setting.

  Args:
    conf: float ``[n, E]`` confidences.
    correct: bool ``[n, E]``.
    cum_cost: float ``[E]``, cost of leaving at each exit (module docstring), or ``[E, F]``:
      ``F`` additive factors whose product is the cost (EDP: latency and energy).
    thresholds: ``[E-1]`` or ``[E]`` (final ``-inf``).
    branch_cost: optional ``[E-1]`` (``[E-1, F]``); prune dead exits' branches from the cost.

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
  counts, hits = _tally(assign_exits(conf, tau[None]), correct)
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


def _pareto_indices(num_correct: np.ndarray, cost: np.ndarray, scale: float) -> np.ndarray:
  """Non-dominated settings (max correct, min cost) by increasing cost."""
  cost_key = np.round(cost / scale / _COST_RTOL)
  order = np.lexsort((np.arange(len(cost)), -num_correct, cost_key))
  ranked = num_correct[order]
  previous_best = np.maximum.accumulate(np.concatenate([[-1], ranked[:-1]]))
  return order[ranked > previous_best].astype(np.int64)
