"""Early exits: confidence measures, threshold calibration, dynamic inference, plots.

``confidence`` is shared by search, calibration and inference; ``calibrate``
chooses per-exit thresholds on cached calibration confidences (reference B's
adaptive threshold tuning); ``executor`` runs a derived network with real early
exiting (segment by segment, samples that leave stop computing); ``plots`` draws
the results. Not re-exported here: ``plots`` (imports matplotlib),
``run_calibration`` (``dnas-ee calibrate`` on a run dir) and ``evaluation``
(``pipeline.evaluate``'s report), which import the pipeline.
"""
from dnas_ee.exits.calibrate import (
    MODES, Calibration, ParetoFront, SearchOptions, calibrate_accuracy_floor, calibrate_budget,
    candidate_thresholds, evaluate_thresholds, exit_assignment, pareto_front, thresholds_from_json,
    thresholds_to_json)
from dnas_ee.exits.confidence import CONFIDENCE_MEASURES, confidence, host_confidence
from dnas_ee.exits.executor import (
    EarlyExitExecutor, ExitResult, LatencyStats, SegmentPlan, bucket_for, bucket_sizes,
    measure_latencies, measure_latency, measure_throughput, plan_segments)
from dnas_ee.exits.network_costs import NetworkCosts, ObjectiveCosts, network_costs, objective_costs

__all__ = [
    "CONFIDENCE_MEASURES", "Calibration", "EarlyExitExecutor", "ExitResult", "LatencyStats",
    "MODES", "NetworkCosts", "ObjectiveCosts", "ParetoFront", "SearchOptions", "SegmentPlan",
    "bucket_for", "bucket_sizes", "calibrate_accuracy_floor", "calibrate_budget",
    "candidate_thresholds", "confidence", "evaluate_thresholds", "exit_assignment",
    "host_confidence", "measure_latencies", "measure_latency", "measure_throughput",
    "network_costs", "objective_costs", "pareto_front", "plan_segments", "thresholds_from_json",
    "thresholds_to_json",
]
