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

Products of additive costs (EDP). A sample's energy-delay product is not additive over
layers, but its two factors are: ``cum_cost`` may be ``[E, F]`` (and ``branch_cost``
``[E-1, F]``), ``F`` additive factors pruned one by one, the cost of leaving at ``j`` their
product (``cost_j = prod_f cost_j[f]``; the expected cost is still ``sum_j rate_j *
cost_j``). Without it, a calibration for EDP would price a disabled exit's branch as if it
still ran, and prefer exits that fire for almost no sample to removing them.

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

Modules: ``checks`` (inputs), ``grid`` (exact tallies), ``descent`` (the
approximate search), ``results`` (result types, JSON), ``tuning`` (entry points).
"""
from dnas_ee.exits.thresholds.descent import SearchOptions
from dnas_ee.exits.thresholds.grid import candidate_thresholds, evaluate_thresholds, exit_assignment
from dnas_ee.exits.thresholds.results import (
    Calibration, ParetoFront, thresholds_from_json, thresholds_to_json)
from dnas_ee.exits.thresholds.tuning import (
    MODES, calibrate_accuracy_floor, calibrate_budget, pareto_front)

__all__ = [
    "MODES", "Calibration", "ParetoFront", "SearchOptions", "calibrate_accuracy_floor",
    "calibrate_budget", "candidate_thresholds", "evaluate_thresholds", "exit_assignment",
    "pareto_front", "thresholds_from_json", "thresholds_to_json",
]
