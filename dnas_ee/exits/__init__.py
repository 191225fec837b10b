"""Early exits: confidence measures, threshold calibration and its plots.

``confidence`` is shared by search, calibration and inference; ``calibrate``
chooses per-exit thresholds on cached calibration confidences (reference B's
adaptive threshold tuning); ``plots`` draws the result. ``plots`` imports
matplotlib and is therefore not re-exported here: ``from dnas_ee.exits.plots
import plot_pareto``.
"""
from dnas_ee.exits.calibrate import (
    MODES, Calibration, ParetoFront, SearchOptions, calibrate_accuracy_floor, calibrate_budget,
    candidate_thresholds, evaluate_thresholds, exit_assignment, pareto_front, thresholds_from_json,
    thresholds_to_json)
from dnas_ee.exits.confidence import CONFIDENCE_MEASURES, confidence

__all__ = [
    "CONFIDENCE_MEASURES", "Calibration", "MODES", "ParetoFront", "SearchOptions",
    "calibrate_accuracy_floor", "calibrate_budget", "candidate_thresholds", "confidence",
    "evaluate_thresholds", "exit_assignment", "pareto_front", "thresholds_from_json",
    "thresholds_to_json",
]
