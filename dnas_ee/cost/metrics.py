"""The cost metrics and the objectives over them: the one table the search, the
calibration, the evaluation and the reports read.

A cost source gives per-op ``macs``, ``weight_bytes`` and ``bitops`` (shapes) and, with an
accelerator LUT, ``latency_s`` and ``energy_j``; ``edp`` (latency x energy per
sample) and ``weighted`` (``loss.metric_weights``) are combinations.
"""
from __future__ import annotations

# hw.objective -> the cost metric it optimizes ('edp' and 'weighted' are combinations).
OBJECTIVE_METRICS = {"macs": "macs", "bitops": "bitops", "latency": "latency_s",
                     "energy": "energy_j"}
# Every hw.objective.
OBJECTIVES = ("macs", "bitops", "latency", "energy", "edp", "weighted")
# The metrics an evaluation reports, in order (those the run's cost source has).
REPORTED_METRICS = ("macs", "latency_s", "energy_j", "edp")
METRIC_LABELS = {"macs": "MACs", "bitops": "BitOPs", "weight_bytes": "weight bytes",
                 "latency_s": "latency (s)", "energy_j": "energy (J)", "edp": "EDP (J s)",
                 "weighted": "weighted cost"}
METRIC_UNITS = {"macs": "MAC", "bitops": "BitOP", "weight_bytes": "B", "latency_s": "s",
                "energy_j": "J", "edp": "J·s"}
