"""Early exits: confidence measures, the exit rule, threshold search, dynamic inference, plots.

``confidence`` is shared by search, calibration and inference; ``decision`` is the
exit rule (the first exit whose confidence reaches its threshold); ``thresholds``
chooses per-exit thresholds on cached calibration confidences (reference B's
adaptive threshold tuning); ``executor`` runs a derived network with real early
exiting (segment by segment, samples that leave stop computing); ``plots`` draws
the results (not re-exported here: it imports matplotlib). The run-level
calibration and evaluation are the stages' (``dnas_ee.stages``); the costs of a
derived network are ``dnas_ee.cost.network``'s.
"""
from dnas_ee.exits.confidence import CONFIDENCE_MEASURES, confidence, host_confidence
from dnas_ee.exits.decision import first_exit
from dnas_ee.exits.executor import (
    EarlyExitExecutor, ExitResult, LatencyStats, SegmentPlan, bucket_for, bucket_sizes,
    measure_latencies, measure_latency, measure_throughput, plan_segments)
from dnas_ee.exits.thresholds import (
    MODES, Calibration, ParetoFront, SearchOptions, calibrate_accuracy_floor, calibrate_budget,
    candidate_thresholds, evaluate_thresholds, exit_assignment, pareto_front, thresholds_from_json,
    thresholds_to_json)

__all__ = [
    "CONFIDENCE_MEASURES", "Calibration", "EarlyExitExecutor", "ExitResult", "LatencyStats",
    "MODES", "ParetoFront", "SearchOptions", "SegmentPlan", "bucket_for", "bucket_sizes",
    "calibrate_accuracy_floor", "calibrate_budget", "candidate_thresholds", "confidence",
    "evaluate_thresholds", "exit_assignment", "first_exit", "host_confidence",
    "measure_latencies", "measure_latency", "measure_throughput", "pareto_front",
    "plan_segments", "thresholds_from_json", "thresholds_to_json",
]
