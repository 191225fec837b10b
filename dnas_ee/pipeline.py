"""A run's stages in order: ``search -> derive -> retrain -> calibrate -> evaluate``.

Each stage is one module of ``dnas_ee.stages`` that reads its inputs from and writes its
artifacts to the work dir, and resumes (the search and the retraining from their latest
checkpoint, the others by recomputing from the artifacts); ``run`` calls them in order.
The stages' public functions are re-exported here, so ``pipeline.search(config, workdir)``
and friends are the library's entry points.

Work-dir layout: ``config.json`` (resolved config), ``search_metrics.jsonl``,
``search_arch.json`` (final architecture parameters), ``genotype.json``,
``retrain_{early_exit,static}_metrics.jsonl``, ``checkpoints/``, ``thresholds.json``,
``summary.json``, ``report.md``, ``timing.json``.
"""
from __future__ import annotations

from dnas_ee.exits.decision import first_exit
from dnas_ee.stages.calibrate import CALIBRATION_MODES, calibrate
from dnas_ee.stages.derive import derive, derive_stage
from dnas_ee.stages.evaluate import evaluate
from dnas_ee.stages.inherited import evaluate_inherited
from dnas_ee.stages.retrain import retrain
from dnas_ee.stages.run_dir import NETWORKS, exit_logits, exit_table, load_run_config, load_trained
from dnas_ee.stages.search import search, search_stage
from dnas_ee.stages.validity import one_shot_validity
from dnas_ee.train.build import network_exit_costs
from dnas_ee.train.setup import SearchRun, prepare_search, search_batches

__all__ = [
    "CALIBRATION_MODES", "NETWORKS", "STAGES", "SearchRun", "calibrate", "derive", "evaluate",
    "evaluate_inherited", "exit_logits", "exit_table", "first_exit", "load_run_config",
    "load_trained", "network_exit_costs", "prepare_search", "retrain", "run", "search",
    "search_batches",
]

STAGES = ("search", "derive", "retrain", "calibrate", "evaluate")
EXTRA_STAGES = ("inherited",)   # the one-shot evaluation in the supernet (lambda sweeps)


def run(config, workdir, *, progress: bool = True, stages=STAGES,
        shared_dir=None) -> dict | None:
  """The given stages in order (default: all five); each resumes from what the work dir
  already holds. ``shared_dir``: a sweep's shared trainings (``dnas_ee.stages.retrain``).

  Returns:
    The summary of the last evaluating stage (``evaluate`` or ``inherited``), else None.
  """
  unknown = [s for s in stages if s not in STAGES + EXTRA_STAGES]
  if unknown:
    raise ValueError(f"unknown stages {unknown}; use some of {STAGES + EXTRA_STAGES}")
  summary = None
  for stage in stages:
    if stage == "search":
      search_stage(config, workdir, progress=progress, shared_dir=shared_dir)
    elif stage == "derive":
      derive_stage(config, workdir)
    elif stage == "retrain":
      retrain(config, workdir, progress=progress, shared_dir=shared_dir)
    elif stage == "calibrate":
      calibrate(config, workdir)
    elif stage == "evaluate":
      one_shot_validity(config, workdir, progress=progress)   # the report shows it
      summary = evaluate(config, workdir)
    else:
      summary = evaluate_inherited(config, workdir)
  return summary
