"""Hand-made cases and unit tests of dnas_ee.exits.thresholds."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dnas_ee.exits.thresholds import (
    Calibration, ParetoFront, SearchOptions, calibrate_accuracy_floor, calibrate_budget,
    candidate_thresholds, evaluate_thresholds, exit_assignment, pareto_front,
    thresholds_from_json, thresholds_to_json)

INF = np.inf

# Four samples, three exits (two early + final). Worked out by hand:
#   tau = (0.9, 0.4): exits 0,1,1,1 -> correct T,T,F,T -> 3/4, cost (1+2+2+2)/4 = 1.75
#   tau = (0.9, 0.8): exits 0,1,2,1 -> all correct      -> 4/4, cost 9/4 = 2.25
#   tau = (0.6, 0.4): exits 0,0,1,1 -> T,F,F,T          -> 2/4, cost 1.5 (the cheapest)
#   tau = (inf, inf): the final exit alone              -> 3/4, cost 4
CONF = np.array([[0.9, 0.5, 0.1],
                 [0.6, 0.9, 0.1],
                 [0.3, 0.4, 0.1],
                 [0.2, 0.8, 0.1]])
CORRECT = np.array([[1, 1, 1],
                    [0, 1, 1],
                    [0, 0, 1],
                    [0, 1, 0]], bool)
CUM_COST = np.array([1.0, 2.0, 4.0])
CANDIDATES = [np.array([INF, 0.9, 0.6]), np.array([INF, 0.8, 0.4])]


def test_exit_assignment_rule():
  assert exit_assignment(CONF, [0.9, 0.4]).tolist() == [0, 1, 1, 1]
  assert exit_assignment(CONF, [0.9, 0.4, -INF]).tolist() == [0, 1, 1, 1]
  assert exit_assignment(CONF, [INF, INF]).tolist() == [2, 2, 2, 2]    # disabled never fire
  assert exit_assignment(CONF, [-INF, 0.4]).tolist() == [0, 0, 0, 0]   # -inf always fires


def test_evaluate_thresholds_by_hand():
  r = evaluate_thresholds(CONF, CORRECT, CUM_COST, [0.9, 0.8])
  assert r["accuracy"] == 1.0 and r["expected_cost"] == pytest.approx(2.25)
  np.testing.assert_allclose(r["exit_rates"], [0.25, 0.5, 0.25])
  r = evaluate_thresholds(CONF, CORRECT, CUM_COST, [0.9, INF])
  assert r["dead_exits"] == [1] and r["expected_cost"] == pytest.approx(3.25)


def test_accuracy_floor_by_hand():
  cal = calibrate_accuracy_floor(CONF, CORRECT, CUM_COST, max_drop=0.0, candidates=CANDIDATES)
  np.testing.assert_array_equal(cal.thresholds, [0.9, 0.4, -INF])
  assert cal.accuracy == 0.75 and cal.expected_cost == pytest.approx(1.75)
  assert cal.final_only_accuracy == 0.75 and cal.final_only_cost == 4.0
  assert cal.mode == "accuracy_floor" and cal.parameter == 0.0 and cal.target == 0.75
  assert cal.front.exact and len(cal.front.cost) == 9
  cal = calibrate_accuracy_floor(CONF, CORRECT, CUM_COST, max_drop=25.0, candidates=CANDIDATES)
  np.testing.assert_array_equal(cal.thresholds, [0.6, 0.4, -INF])
  assert cal.accuracy == 0.5 and cal.expected_cost == pytest.approx(1.5)


def test_budget_by_hand():
  cal = calibrate_budget(CONF, CORRECT, CUM_COST, budget=0.5, reference_cost=4.0,
                         candidates=CANDIDATES)
  # (0.9, 0.4), (0.6, 0.8) and (inf, 0.4) all reach 3/4 within 2.0; the cheapest wins
  np.testing.assert_array_equal(cal.thresholds, [0.9, 0.4, -INF])
  assert cal.target == 2.0 and cal.reference_cost == 4.0
  cal = calibrate_budget(CONF, CORRECT, CUM_COST, budget=0.6, reference_cost=4.0,
                         candidates=CANDIDATES)
  np.testing.assert_array_equal(cal.thresholds, [0.9, 0.8, -INF])
  assert cal.accuracy == 1.0


def test_budget_infeasible_names_lowest_ratio():
  with pytest.raises(ValueError, match=r"lowest achievable cost ratio is 0\.3750"):
    calibrate_budget(CONF, CORRECT, CUM_COST, budget=0.3, reference_cost=4.0,
                     candidates=CANDIDATES)
  with pytest.raises(ValueError, match="lowest"):
    calibrate_budget(CONF, CORRECT, CUM_COST, budget=0.3, reference_cost=4.0,
                     candidates=CANDIDATES, exhaustive_limit=0)


def test_floor_infeasible_without_disabled_candidate():
  with pytest.raises(ValueError, match="accuracy floor"):
    calibrate_accuracy_floor(CONF, CORRECT, CUM_COST, max_drop=0.0,
                             candidates=[[0.6], [0.4]])


def test_dead_exits_and_pruning():
  branch = np.array([0.5, 0.25])
  # exit 1 disabled: the three samples reaching the final exit skip its branch
  plain = evaluate_thresholds(CONF, CORRECT, CUM_COST, [0.9, INF])
  pruned = evaluate_thresholds(CONF, CORRECT, CUM_COST, [0.9, INF], branch_cost=branch)
  assert plain["expected_cost"] - pruned["expected_cost"] == pytest.approx(0.75 * 0.25)
  # a finite threshold no sample reaches is dead too (0.95 > every conf of exit 1)
  r = evaluate_thresholds(CONF, CORRECT, CUM_COST, [INF, 0.95], branch_cost=branch)
  assert r["dead_exits"] == [0, 1] and r["expected_cost"] == pytest.approx(4.0 - 0.75)
  # both exits fire: nothing pruned
  both = evaluate_thresholds(CONF, CORRECT, CUM_COST, [0.9, 0.8], branch_cost=branch)
  assert both["expected_cost"] == pytest.approx(2.25)


def test_pruned_calibration_sets_dead_thresholds_to_inf():
  cands = [np.array([INF, 0.9]), np.array([0.95])]          # exit 1 can only be dead
  cal = calibrate_accuracy_floor(CONF, CORRECT, CUM_COST, max_drop=0.0, candidates=cands,
                                 branch_cost=[0.5, 0.25])
  assert cal.pruned and 1 in cal.dead_exits and cal.thresholds[1] == INF
  again = evaluate_thresholds(CONF, CORRECT, CUM_COST, cal.thresholds, branch_cost=[0.5, 0.25])
  assert again["expected_cost"] == pytest.approx(cal.expected_cost)
  unpruned = calibrate_accuracy_floor(CONF, CORRECT, CUM_COST, max_drop=0.0, candidates=cands)
  assert unpruned.thresholds[1] == 0.95 and unpruned.dead_exits == cal.dead_exits


def test_edp_calibration_prunes_latency_and_energy_then_multiplies():
  """An exit that fires for 1 sample in 100 costs every other sample its branch. Pricing
  EDP per exit with nothing pruned (the old rule) keeps it; pruning each factor removes it.
  Backbone latency = energy = 1 per segment, each branch 1: leaving at exit 0, 1 or the
  final exit costs (2, 4, 6) in both factors with every branch run."""
  n = 100
  conf = np.full((n, 3), 0.1)
  conf[0, 0] = 0.99             # exit 0 would take sample 0 alone
  conf[:90, 1] = 0.99           # exit 1 takes 90%
  correct = np.ones((n, 3), bool)
  factors = np.array([[2.0, 2.0], [4.0, 4.0], [6.0, 6.0]])     # [E, (latency, energy)]
  branch = np.ones((2, 2))
  cands = [np.array([INF, 0.99]), np.array([INF, 0.99])]
  # both exits: 0.01 * 2*2 + 0.89 * 4*4 + 0.1 * 6*6 = 17.88
  both = evaluate_thresholds(conf, correct, factors, [0.99, 0.99], branch_cost=branch)
  assert both["expected_cost"] == pytest.approx(17.88)
  # exit 0 pruned: 0.9 * (4-1)*(4-1) + 0.1 * (6-1)*(6-1) = 10.6 (not 16 - 1 and 36 - 1);
  # the backbone alone (both pruned): 4*4 = 16
  cal = calibrate_accuracy_floor(conf, correct, factors, max_drop=0.0, candidates=cands,
                                 branch_cost=branch)
  assert cal.pruned and list(cal.thresholds[:2]) == [INF, 0.99]
  assert cal.expected_cost == pytest.approx(10.6) and cal.final_only_cost == pytest.approx(16.0)
  # without pruning, disabling exit 0 saves nothing (18 > 17.88): the exit stays
  unpruned = calibrate_accuracy_floor(conf, correct, factors, max_drop=0.0, candidates=cands)
  assert list(unpruned.thresholds[:2]) == [0.99, 0.99]
  assert unpruned.expected_cost == pytest.approx(17.88)
  with pytest.raises(ValueError, match="branch_cost must have shape"):
    evaluate_thresholds(conf, correct, factors, [INF, INF], branch_cost=np.ones(2))


def test_final_exit_always_fires_and_single_exit_network():
  cal = calibrate_budget(CONF[:, -1:], CORRECT[:, -1:], CUM_COST[-1:], budget=1.0,
                         reference_cost=4.0)
  np.testing.assert_array_equal(cal.thresholds, [-INF])
  assert cal.accuracy == 0.75 and cal.exit_rates.tolist() == [1.0]
  with pytest.raises(ValueError, match="-inf"):
    exit_assignment(CONF, [0.5, 0.5, 0.5])


def test_candidate_thresholds():
  cands = candidate_thresholds(CONF, 3)
  assert len(cands) == 2
  assert cands[0].tolist() == [INF, 0.9, 0.3, 0.2]         # levels 0, 0.5, 1 ('lower')
  assert cands[1][0] == INF and np.all(np.diff(cands[1]) < 0)
  assert candidate_thresholds(CONF, 1)[0].tolist() == [INF, 0.2]
  with pytest.raises(ValueError, match="num_candidates"):
    candidate_thresholds(CONF, 0)


def test_pareto_front_by_hand():
  front = pareto_front(CONF, CORRECT, CUM_COST, CANDIDATES)
  points = sorted(zip(front.cost[front.pareto].tolist(), front.accuracy[front.pareto].tolist()))
  assert points == [(1.5, 0.5), (1.75, 0.75), (2.25, 1.0)]
  assert np.all(np.diff(front.cost[front.pareto]) > 0)


def test_pareto_front_sampled_when_grid_too_large():
  front = pareto_front(CONF, CORRECT, CUM_COST, CANDIDATES, exhaustive_limit=4)
  assert not front.exact and np.all(np.isinf(front.thresholds[0]))


def test_json_helpers_and_round_trip():
  assert thresholds_to_json([[0.5, INF], [-INF, 1.0]]) == [[0.5, "inf"], ["-inf", 1.0]]
  np.testing.assert_array_equal(thresholds_from_json([0.5, "inf", "-inf"]), [0.5, INF, -INF])
  np.testing.assert_array_equal(thresholds_from_json([None, "+inf"]), [INF, INF])  # null: off
  assert [float(v) for v in thresholds_to_json([INF, -INF])] == [INF, -INF]
  with pytest.raises(ValueError, match="unknown threshold string"):
    thresholds_from_json(["off"])
  cal = calibrate_budget(CONF, CORRECT, CUM_COST, budget=0.6, reference_cost=4.0,
                         branch_cost=[0.5, 0.25], candidates=CANDIDATES)

  def no_constants(name):
    raise AssertionError(f"non-standard JSON constant {name}")

  for which in ("all", "pareto", "none"):
    text = cal.to_json(front=which)
    json.loads(text, parse_constant=no_constants)
    back = Calibration.from_json(text)
    np.testing.assert_array_equal(back.thresholds, cal.thresholds)
    np.testing.assert_array_equal(back.exit_rates, cal.exit_rates)
    for key in ("accuracy", "expected_cost", "dead_exits", "mode", "parameter", "target",
                "reference_cost", "final_only_accuracy", "final_only_cost", "pruned"):
      assert getattr(back, key) == getattr(cal, key), key
    if which == "all":
      for key in ("thresholds", "accuracy", "cost", "exit_rates", "pareto"):
        np.testing.assert_array_equal(getattr(back.front, key), getattr(cal.front, key))
      assert back.front.exact == cal.front.exact
    if which == "pareto":
      np.testing.assert_array_equal(back.front.cost, cal.front.cost[cal.front.pareto])
      np.testing.assert_array_equal(back.front.thresholds,
                                    cal.front.thresholds[cal.front.pareto])
    if which == "none":
      assert len(back.front.cost) == 0
  with pytest.raises(ValueError, match="missing"):
    Calibration.from_dict({"thresholds": []})


@pytest.mark.parametrize("bad, match", [
    (dict(conf=np.zeros((0, 3))), "n >= 1"),
    (dict(conf=np.zeros((4, 0)), correct=np.zeros((4, 0)), cum_cost=np.zeros(0)), "E >= 1"),
    (dict(conf=np.where(CONF > 0.85, np.nan, CONF)), "non-finite"),
    (dict(correct=CORRECT[:, :2]), "shape of conf"),
    (dict(correct=CORRECT * 2), "boolean"),
    (dict(cum_cost=CUM_COST[:2]), "cum_cost must have shape"),
    (dict(cum_cost=[1.0, np.inf, 3.0]), "finite"),
    (dict(branch_cost=[1.0]), "branch_cost must have shape"),
    (dict(branch_cost=[1.0, -1.0]), ">= 0"),
    (dict(thresholds=[0.5]), "expected 2 early-exit thresholds"),
    (dict(thresholds=[np.nan, 0.5]), "NaN"),
])
def test_evaluate_validates_inputs(bad, match):
  args = dict(conf=CONF, correct=CORRECT, cum_cost=CUM_COST, thresholds=[0.9, 0.4],
              branch_cost=None)
  args.update(bad)
  with pytest.raises(ValueError, match=match):
    evaluate_thresholds(**args)


def test_calibrate_validates_parameters():
  with pytest.raises(ValueError, match="percentage points"):
    calibrate_accuracy_floor(CONF, CORRECT, CUM_COST, max_drop=-1)
  with pytest.raises(ValueError, match="budget"):
    calibrate_budget(CONF, CORRECT, CUM_COST, budget=0.0, reference_cost=4.0)
  with pytest.raises(ValueError, match="reference_cost"):
    calibrate_budget(CONF, CORRECT, CUM_COST, budget=0.5, reference_cost=-4.0)
  with pytest.raises(ValueError, match="one list per early exit"):
    calibrate_budget(CONF, CORRECT, CUM_COST, budget=0.5, reference_cost=4.0,
                     candidates=CANDIDATES[:1])
  with pytest.raises(ValueError, match="block_size"):
    SearchOptions(block_size=0)


def test_front_arrays_are_consistent():
  front = calibrate_accuracy_floor(CONF, CORRECT, CUM_COST, max_drop=0.0,
                                   candidates=CANDIDATES).front
  assert isinstance(front, ParetoFront) and front.num_samples == 4
  for t, acc, cost, rates in zip(front.thresholds, front.accuracy, front.cost, front.exit_rates):
    r = evaluate_thresholds(CONF, CORRECT, CUM_COST, t)
    assert r["accuracy"] == acc and r["expected_cost"] == pytest.approx(cost)
    np.testing.assert_allclose(r["exit_rates"], rates)


def test_accuracy_floor_against_the_static_network():
  """The floor can be the static network's accuracy (the honest baseline), not the final exit's."""
  # Static network: 4/4 on these samples -> with no drop only tau = (0.9, 0.8) (4/4) qualifies.
  cal = calibrate_accuracy_floor(CONF, CORRECT, CUM_COST, max_drop=0.0, candidates=CANDIDATES,
                                 reference_correct=4)
  np.testing.assert_array_equal(cal.thresholds[:2], [0.9, 0.8])
  assert cal.accuracy == 1.0 and cal.expected_cost == pytest.approx(2.25)
  # Static network 2/4: the cheapest setting (2/4 at cost 1.5) is allowed.
  cal = calibrate_accuracy_floor(CONF, CORRECT, CUM_COST, max_drop=0.0, candidates=CANDIDATES,
                                 reference_correct=2)
  assert cal.accuracy == 0.5 and cal.expected_cost == pytest.approx(1.5)
  # Out of reach (5 of 4 is impossible): one clear error naming the static network.
  with pytest.raises(ValueError, match="static network alone"):
    calibrate_accuracy_floor(CONF, CORRECT, CUM_COST, max_drop=0.0, candidates=CANDIDATES,
                             reference_correct=5)
