"""Calibrating the exit thresholds of a retrained run (``dnas-ee calibrate``).

Reads the run dir alone: ``config.json``, ``genotype.json`` and the final
retraining checkpoints of both networks. The early-exit network is run once over
the **calib** split (carved out of the training data by ``dnas_ee.data`` and never
trained on: the weights train on train (+ val), the architecture on val), its
per-exit confidences and correctness are cached, and ``calibrate_accuracy_floor``
or ``calibrate_budget`` choose the thresholds (reference B's adaptive threshold
tuning). The cost of each exit is the configured ``hw.objective`` metric
(``dnas_ee.cost.network.objective_costs``), with each branch's own cost so that exits
that never fire are pruned; the budget is relative to the static backbone's cost.

Writes ``thresholds.json`` (read by the evaluate stage: ``{"thresholds": [...]}``,
one per early exit, ``"inf"`` for a disabled exit, plus what they were calibrated
for) and ``calibration.json`` (the full ``Calibration``, with its Pareto front).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dnas_ee.cost.network import objective_costs
from dnas_ee.data import load_dataset
from dnas_ee.exits.thresholds import (
    MODES, Calibration, calibrate_accuracy_floor, calibrate_budget, thresholds_to_json)
from dnas_ee.space.genotype import Genotype, genotype_space
from dnas_ee.stages.run_dir import (
    check_run_files, exit_logits, exit_table, load_run_config, load_trained)
from dnas_ee.train.build import build_cost_source, network_costs
from dnas_ee.train.loop import is_primary

THRESHOLDS_FILE = "thresholds.json"
CALIBRATION_MODES = ("accuracy_floor", "budget", "none")
CALIBRATION_FILE = "calibration.json"


def calibrate(config, workdir):
  """The calibrate stage: per-exit thresholds on the calibration split (``config.calibrate``);
  'none' keeps the configured ones."""
  c = config.calibrate
  if c.mode not in CALIBRATION_MODES:
    raise ValueError(f"unknown calibrate.mode {c.mode!r}; use one of {CALIBRATION_MODES}")
  if c.mode == "none" or not Genotype.load(Path(workdir) / "genotype.json").exits:
    if c.mode != "none":
      print("calibrate: the derived network has no early exit; nothing to calibrate")
    (Path(workdir) / THRESHOLDS_FILE).unlink(missing_ok=True)
    return None
  return calibrate_run(workdir, mode=c.mode, max_drop=c.max_drop, budget=c.budget,
                       reference=c.reference)


def calibrate_run(workdir, *, mode: str, max_drop: float = 0.5, budget: float = 0.5,
                  num_candidates: int = 16, verbose: bool = True,
                  reference: str = "final_exit") -> Calibration:
  """Calibrates the thresholds of the run in ``workdir`` on its calib split.

  Args:
    workdir: a run dir after ``dnas-ee retrain``.
    mode: ``'accuracy_floor'`` (cheapest thresholds within ``max_drop`` points of
      the final exit's calib accuracy) or ``'budget'`` (most accurate thresholds
      whose expected cost is at most ``budget`` x the static backbone's).
    max_drop: accuracy_floor: allowed drop in percentage points.
    budget: budget: cost as a fraction of the static backbone's.
    reference: accuracy_floor: the floor is ``max_drop`` points below the calib
      accuracy of the network's own final exit ('final_exit') or of the static
      network trained alone with the same budget ('static', the honest baseline:
      joint exit training can cost the final exit accuracy). When no setting reaches
      the static floor, the cheapest setting with no loss against the network's own
      final exit is taken, and the record says so.
    num_candidates: candidate thresholds per exit (quantiles of its confidences).
    verbose: print the result.

  Returns:
    The ``Calibration`` (also written to ``workdir/calibration.json``).

  Raises:
    FileNotFoundError: a file of the run dir is missing (the message names it).
    ValueError: bad mode or parameters, no early exit, an empty calib split, or
      an infeasible budget.
  """
  if mode not in MODES:
    raise ValueError(f"unknown calibration mode {mode!r}; use one of {MODES}")
  workdir = Path(workdir)
  config = load_run_config(workdir)
  check_run_files(workdir, config)
  space, setup, state = load_trained(config, workdir, "early_exit")
  if not space.branches:
    raise ValueError(f"the derived network of {workdir} has no early exit (genotype.json "
                     f"'exits' is empty): there is nothing to calibrate; derive with more exits "
                     f"(--config.derive.rule=top_k --config.derive.top_k=2) and retrain")
  data = load_dataset(config.data)
  if len(data.calib.labels) == 0:
    raise ValueError("the calib split is empty: set --config.data.calib_fraction > 0 (e.g. 0.1) "
                     "and retrain, so the thresholds are calibrated on data never trained on")
  logits = exit_logits(setup, state, data.calib.images, config.evaluate.batch_size)
  conf, correct = exit_table(logits, data.calib.labels, config.exits.confidence)

  genotype = Genotype.load(workdir / "genotype.json")
  static_space = genotype_space(genotype.static)
  source = build_cost_source(config, space)    # one LUT load serves both networks
  costs = network_costs(config, space, source)
  static = network_costs(config, static_space, source)
  obj = objective_costs(config.hw.objective, costs, static,
                        config.loss.metric_weights.to_dict())
  common = dict(branch_cost=obj.branch, num_candidates=num_candidates)
  note = obj.note
  if mode == "accuracy_floor" and reference == "static":
    _, s_setup, s_state = load_trained(config, workdir, "static")
    s_logits = exit_logits(s_setup, s_state, data.calib.images, config.evaluate.batch_size)
    static_correct = int(np.sum(s_logits[-1].argmax(-1) == data.calib.labels))
    try:
      cal = calibrate_accuracy_floor(conf, correct, obj.cumulative, max_drop=max_drop,
                                     reference_correct=static_correct, **common)
    except ValueError:
      cal = calibrate_accuracy_floor(conf, correct, obj.cumulative, max_drop=0.0, **common)
      note = ((note + "; ") if note else "") + (
          f"the static floor ({100 * static_correct / len(conf):.2f}% - {max_drop:g} points) is "
          f"out of reach of this network: thresholds with no loss against its own final exit")
  elif mode == "accuracy_floor":
    cal = calibrate_accuracy_floor(conf, correct, obj.cumulative, max_drop=max_drop, **common)
  else:
    cal = calibrate_budget(conf, correct, obj.cumulative, budget=budget,
                           reference_cost=obj.reference, **common)

  record = dict(
      thresholds=thresholds_to_json(cal.thresholds[:-1]), confidence=config.exits.confidence,
      exit_positions=[b.position for b in space.branches], mode=cal.mode,
      parameter=cal.parameter, metric=obj.metric, split="calib", calib_samples=int(len(conf)),
      accuracy=cal.accuracy, expected_cost=cal.expected_cost, reference_cost=obj.reference,
      cost_ratio=cal.expected_cost / obj.reference, exit_rates=np.asarray(cal.exit_rates).tolist(),
      dead_exits=list(cal.dead_exits), pruned=cal.pruned, note=note,
      floor_reference=reference if mode == "accuracy_floor" else None)
  if is_primary():   # a multi-host run computes the same thresholds on every host
    (workdir / THRESHOLDS_FILE).write_text(json.dumps(record, indent=1, allow_nan=False))
    (workdir / CALIBRATION_FILE).write_text(cal.to_json())
  if verbose:
    print(calibration_text(record))
  return cal


def calibration_text(record: dict) -> str:
  """The printed summary of a ``thresholds.json`` record."""
  what = (f"max_drop={record['parameter']:g} points" if record["mode"] == "accuracy_floor" else
          f"budget={record['parameter']:g} x static")
  tau = ", ".join(str(v) if isinstance(v, str) else f"{v:.6g}" for v in record["thresholds"])
  lines = [f"calibrated {record['mode']} ({what}) on {record['calib_samples']} calib samples, "
           f"cost metric {record['metric']}"]
  if record["note"]:
    lines.append(f"note: {record['note']}")
  dead = record["dead_exits"]
  lines += [f"thresholds ({record['confidence']}): [{tau}] at exits after blocks "
            f"{record['exit_positions']}",
            f"accuracy {100 * record['accuracy']:.2f}%, cost ratio {record['cost_ratio']:.4f} of "
            f"the static backbone",
            "exit rates: " + " ".join(f"{r:.3f}" for r in record["exit_rates"]),
            "dead exits: " + (", ".join(f"{k} (after block {record['exit_positions'][k]})"
                                        for k in dead) if dead else "none")]
  return "\n".join(lines)
