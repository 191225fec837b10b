"""Calibration against a plain python loop over every threshold combination, with one
cost per exit or a product of additive factors (EDP: latency x energy)."""
from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnas_ee.exits.thresholds import (
    SearchOptions, calibrate_accuracy_floor, calibrate_budget, evaluate_thresholds, pareto_front)

LEVELS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)   # few values: ties are common


def plain_eval(conf, correct, cum_cost, tau, branch_cost=None):
  """(number correct, expected cost, exit per sample) by walking each sample."""
  n, num_exits = conf.shape
  exits = []
  for i in range(n):
    j = next((k for k in range(num_exits - 1) if conf[i, k] >= tau[k]), num_exits - 1)
    exits.append(j)
  dead = [k for k in range(num_exits - 1) if k not in exits]
  total = 0.0
  for j in exits:
    cost = np.array(cum_cost[j], float)         # a number, or [F] factors
    if branch_cost is not None:
      for k in dead:
        if k < j:
          cost = cost - branch_cost[k]
    total += float(np.prod(cost))               # each factor pruned, then multiplied
  return sum(bool(correct[i, j]) for i, j in enumerate(exits)), total / n, exits


def all_settings(conf, correct, cum_cost, candidates, branch_cost):
  """Every setting in the documented grid order: each exit's candidates descending."""
  ordered = [sorted(set(c.tolist()), reverse=True) for c in candidates]
  return [(tau, *plain_eval(conf, correct, cum_cost, tau, branch_cost)[:2])
          for tau in itertools.product(*ordered)]


@st.composite
def cases(draw, max_exits=4):
  n = draw(st.integers(1, 40))
  num_exits = draw(st.integers(1, max_exits))
  conf = np.array(draw(st.lists(st.sampled_from(LEVELS), min_size=n * num_exits,
                                max_size=n * num_exits))).reshape(n, num_exits)
  correct = np.array(draw(st.lists(st.booleans(), min_size=n * num_exits,
                                   max_size=n * num_exits))).reshape(n, num_exits)
  # integer costs: ties are genuine, never rounding noise; not necessarily monotone.
  # factors: () one cost per exit, (2,) two additive factors whose product is the cost.
  factors = draw(st.sampled_from([(), (2,)]))
  size = num_exits * (factors[0] if factors else 1)
  cum_cost = np.array(draw(st.lists(st.integers(0, 20), min_size=size, max_size=size)),
                      float).reshape(num_exits, *factors)
  branch_cost = None
  if draw(st.booleans()):
    size = (num_exits - 1) * (factors[0] if factors else 1)
    branch_cost = np.array(draw(st.lists(st.integers(0, 3), min_size=size, max_size=size)),
                           float).reshape(num_exits - 1, *factors)
  candidates = []
  for _ in range(num_exits - 1):
    cand = draw(st.lists(st.sampled_from(LEVELS + (np.inf, -np.inf)), min_size=1, max_size=3,
                         unique=True))
    if draw(st.integers(0, 4)):          # usually offer "disabled", as the default does
      cand = sorted(set(cand) | {np.inf})
    candidates.append(np.array(cand))
  return conf, correct, cum_cost, branch_cost, candidates


def floor_optimum(table, n, final_correct, max_drop):
  need = final_correct - math.floor(n * max_drop / 100 + 1e-9)
  feasible = [(c, k) for _, k, c in table if k >= need]
  if not feasible:
    return None
  best_cost = min(c for c, _ in feasible)
  best_correct = max(k for c, k in feasible if c <= best_cost + 1e-9)
  return best_correct, best_cost


def budget_optimum(table, limit):
  feasible = [(c, k) for _, k, c in table if c <= limit * (1 + 1e-9)]
  if not feasible:
    return None
  best_correct = max(k for _, k in feasible)
  best_cost = min(c for c, k in feasible if k == best_correct)
  return best_correct, best_cost


def check_calibration(cal, conf, correct, cum_cost, branch_cost):
  """The reported numbers are what the thresholds do; the final exit fires."""
  assert cal.thresholds[-1] == -np.inf
  k, cost, exits = plain_eval(conf, correct, cum_cost, cal.thresholds[:-1], branch_cost)
  assert k == round(cal.accuracy * len(conf))
  assert math.isclose(cost, cal.expected_cost, abs_tol=1e-9)
  np.testing.assert_allclose(np.bincount(exits, minlength=conf.shape[1]) / len(conf),
                             cal.exit_rates)
  assert cal.dead_exits == [j for j in range(conf.shape[1] - 1) if j not in exits]
  for j in range(conf.shape[1] - 1):
    if cal.thresholds[j] == np.inf:
      assert j in cal.dead_exits


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from([0.0, 2.5, 5.0, 10.0, 50.0]))
def test_accuracy_floor_matches_brute_force(case, max_drop):
  conf, correct, cum_cost, branch_cost, candidates = case
  table = all_settings(conf, correct, cum_cost, candidates, branch_cost)
  want = floor_optimum(table, len(conf), int(correct[:, -1].sum()), max_drop)
  try:
    cal = calibrate_accuracy_floor(conf, correct, cum_cost, max_drop=max_drop,
                                   candidates=candidates, branch_cost=branch_cost)
  except ValueError as err:
    assert want is None, err
    return
  assert want is not None
  assert round(cal.accuracy * len(conf)) == want[0]
  assert math.isclose(cal.expected_cost, want[1], abs_tol=1e-9)
  check_calibration(cal, conf, correct, cum_cost, branch_cost)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from([0.25, 0.5, 0.75, 1.0]))
def test_budget_matches_brute_force(case, budget):
  conf, correct, cum_cost, branch_cost, candidates = case
  reference = float(np.prod(cum_cost.reshape(len(cum_cost), -1), axis=1).max()) + 1.0
  table = all_settings(conf, correct, cum_cost, candidates, branch_cost)
  want = budget_optimum(table, budget * reference)
  try:
    cal = calibrate_budget(conf, correct, cum_cost, budget=budget, reference_cost=reference,
                           candidates=candidates, branch_cost=branch_cost)
  except ValueError as err:
    assert want is None
    lowest = min(c for _, _, c in table) / reference
    assert f"{lowest:.4f}" in str(err)
    return
  assert want is not None
  assert round(cal.accuracy * len(conf)) == want[0]
  assert math.isclose(cal.expected_cost, want[1], abs_tol=1e-9)
  assert cal.expected_cost <= budget * reference + 1e-9
  check_calibration(cal, conf, correct, cum_cost, branch_cost)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_pareto_front_is_exact_and_non_dominated(case):
  conf, correct, cum_cost, branch_cost, candidates = case
  n = len(conf)
  front = pareto_front(conf, correct, cum_cost, candidates, branch_cost)
  table = all_settings(conf, correct, cum_cost, candidates, branch_cost)
  assert front.exact and len(front.cost) == len(table)
  for i, (tau, k, cost) in enumerate(table):   # the same settings, same order, same values
    np.testing.assert_array_equal(front.thresholds[i], tau)
    assert round(front.accuracy[i] * n) == k and math.isclose(front.cost[i], cost, abs_tol=1e-9)
  acc, cost, eps = front.accuracy, front.cost, 1e-9
  for p in front.pareto:
    better = (acc > acc[p]) | (cost < cost[p] - eps)
    dominated = (acc >= acc[p]) & (cost <= cost[p] + eps) & better
    assert not dominated.any()
  pa, pc = acc[front.pareto], cost[front.pareto]
  for a, c in zip(acc, cost):
    assert np.any((pa >= a) & (pc <= c + eps))
  assert np.all(np.diff(pc) > 0) and np.all(np.diff(pa) > 0)


def option_sets():
  return st.sampled_from([SearchOptions(random_samples=0, num_starts=1),
                          SearchOptions(random_samples=0, num_starts=1, block_size=1),
                          SearchOptions(random_samples=8, num_starts=3, seed=1)])


def objective_key(mode, k, cost, target):
  """Smaller is better, as documented for the approximate search."""
  if mode == "accuracy_floor":
    return (max(0, target - k), round(cost, 9), -k)
  return (round(max(0.0, cost - target), 9), -k, round(cost, 9))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(max_exits=5), option_sets(), st.sampled_from(["accuracy_floor", "budget"]))
def test_approximate_search_guarantees(case, options, mode):
  """Forced approximate search (exhaustive_limit=0) versus its documented guarantees."""
  conf, correct, cum_cost, branch_cost, candidates = case
  n, num_exits = conf.shape
  table = all_settings(conf, correct, cum_cost, candidates, branch_cost)
  if mode == "accuracy_floor":
    target = int(correct[:, -1].sum()) - math.floor(n * 5.0 / 100 + 1e-9)
    want = floor_optimum(table, n, int(correct[:, -1].sum()), 5.0)
    run = lambda: calibrate_accuracy_floor(   # noqa: E731
        conf, correct, cum_cost, max_drop=5.0, candidates=candidates, branch_cost=branch_cost,
        exhaustive_limit=0, options=options)
  else:
    reference = float(np.prod(cum_cost.reshape(len(cum_cost), -1), axis=1).max()) + 1.0
    target = 0.6 * reference
    want = budget_optimum(table, target)
    run = lambda: calibrate_budget(   # noqa: E731
        conf, correct, cum_cost, budget=0.6, reference_cost=reference, candidates=candidates,
        branch_cost=branch_cost, exhaustive_limit=0, options=options)
  disabled = tuple(max(c) for c in candidates)
  k0, c0, _ = plain_eval(conf, correct, cum_cost, disabled, branch_cost)
  start_feasible = objective_key(mode, k0, c0, target)[0] == 0
  try:
    cal = run()
  except ValueError:
    assert not start_feasible          # feasible start => feasible result
    return
  assert num_exits == 1 or not cal.front.exact
  check_calibration(cal, conf, correct, cum_cost, branch_cost)
  k = round(cal.accuracy * n)
  got = objective_key(mode, k, cal.expected_cost, target)
  assert got[0] == 0                    # feasible
  assert got <= objective_key(mode, k0, c0, target)   # never worse than all-disabled
  # exact when the early exits fit in one block
  block = 1 if options.block_size == 1 else 2
  if num_exits - 1 <= block:
    assert (k, round(cal.expected_cost, 9)) == (want[0], round(want[1], 9))
  # block-optimal: no change of any `block` exits' thresholds improves the result. A
  # pruned calibration reports dead exits as +inf, so look for the setting it came from
  # among the evaluated ones with the same live thresholds and the same numbers.
  live = ~np.isin(np.arange(num_exits - 1), cal.dead_exits)
  rows = [t for t, a, c in zip(cal.front.thresholds, cal.front.accuracy, cal.front.cost)
          if a == cal.accuracy and math.isclose(c, cal.expected_cost, abs_tol=1e-9)
          and np.array_equal(t[live], cal.thresholds[:-1][live])]
  assert any(is_block_optimal(list(t), block, got, mode, target, case) for t in rows)


def is_block_optimal(current, block, got, mode, target, case):
  conf, correct, cum_cost, branch_cost, candidates = case
  for blk in itertools.combinations(range(len(candidates)), min(block, len(candidates))):
    for values in itertools.product(*(candidates[j] for j in blk)):
      tau = list(current)
      for j, v in zip(blk, values):
        tau[j] = v
      kk, cc, _ = plain_eval(conf, correct, cum_cost, tau, branch_cost)
      if objective_key(mode, kk, cc, target) < got:
        return False
  return True


def test_evaluate_matches_plain_loop_on_random_floats():
  rng = np.random.default_rng(0)
  for _ in range(20):
    n, num_exits = rng.integers(1, 30), rng.integers(1, 6)
    conf, correct = rng.random((n, num_exits)), rng.random((n, num_exits)) < 0.6
    cum_cost, branch = rng.random(num_exits) * 5, rng.random(num_exits - 1)
    tau = np.where(rng.random(num_exits - 1) < 0.3, np.inf, rng.random(num_exits - 1))
    for b in (None, branch):
      k, cost, _ = plain_eval(conf, correct, cum_cost, tau, b)
      r = evaluate_thresholds(conf, correct, cum_cost, tau, branch_cost=b)
      assert round(r["accuracy"] * n) == k and math.isclose(r["expected_cost"], cost,
                                                            rel_tol=1e-12)
