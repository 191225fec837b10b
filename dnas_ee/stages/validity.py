"""One-shot validity: does the weight-shared supernet rank candidates as fine-tuning does?

Random search and NSGA-II pick a network by scoring candidates inside one trained supernet
(shared weights). That choice is only as good as the supernet's ranking. With
``method.validity_candidates=K``, the derive stage of a scored method also records K of
its scored candidates (a seeded sample of all distinct ones, not only the front, whose
ranking is the one that matters); here each is fine-tuned like the picked network (the
``retrain`` stage's budget and rules: branches on the cached features of a frozen backbone,
the whole network otherwise), then scored again on the same validation images at the same
threshold. Kendall's tau between the two accuracy rankings, and between the two cost
rankings, goes to ``one_shot_validity.json`` and the run's report.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dnas_ee.cost.network import objective_costs
from dnas_ee.data import load_dataset
from dnas_ee.exits.decision import first_exit
from dnas_ee.methods.stage import RESULT_FILE, SCORED
from dnas_ee.space.genotype import Genotype, genotype_space
from dnas_ee.stages.retrain import retrain
from dnas_ee.stages.run_dir import exit_logits, exit_table, load_trained
from dnas_ee.train.build import network_costs
from dnas_ee.train.loop import is_primary

VALIDITY_FILE = "one_shot_validity.json"
VALIDITY_DIR = "validity"


def wants_validity(config) -> bool:
  return config.method.name in SCORED and int(config.method.validity_candidates) > 0


def fine_tuned_score(config, candidate_dir: Path, images, labels) -> tuple[float, float]:
  """(accuracy, cost relative to the static backbone) of a fine-tuned candidate, leaving
  at the search threshold: the scores the supernet gave it, now with its own weights."""
  space, setup, state = load_trained(config, candidate_dir, "early_exit")
  genotype = Genotype.load(candidate_dir / "genotype.json")
  costs = network_costs(config, space)
  static = network_costs(config, genotype_space(genotype.static))
  objective = objective_costs(config.hw.objective, costs, static,
                              config.loss.metric_weights.to_dict())
  conf, correct = exit_table(exit_logits(setup, state, images, config.evaluate.batch_size),
                             labels, config.exits.confidence)
  thresholds = np.full(len(space.branches), config.exits.search_threshold)
  taken = first_exit(conf, thresholds)
  rates = np.bincount(taken, minlength=space.num_exits) / len(taken)
  cost = float(rates @ objective.vector(costs.deployed(thresholds))) / objective.reference
  return float(correct[np.arange(len(taken)), taken].mean()), cost


def kendall(a, b) -> dict:
  """Kendall's tau-b of two scorings and its two-sided p-value (None for fewer than 3)."""
  from scipy.stats import kendalltau
  if len(a) < 3:
    return dict(tau=None, p_value=None)
  result = kendalltau(a, b)
  tau = float(result.statistic)
  return dict(tau=None if np.isnan(tau) else tau,
              p_value=None if np.isnan(result.pvalue) else float(result.pvalue))


def one_shot_validity(config, workdir, *, progress: bool = False) -> dict | None:
  """Fine-tunes the recorded candidates (each resumable in ``validity/candidate_i``) and
  writes ``one_shot_validity.json``; None when the run does not ask for it."""
  if not wants_validity(config):
    return None
  workdir = Path(workdir)
  if (workdir / VALIDITY_FILE).exists():
    return json.loads((workdir / VALIDITY_FILE).read_text())
  record = json.loads((workdir / RESULT_FILE).read_text())
  if "validity_sample" not in record:
    raise FileNotFoundError(f"{workdir / RESULT_FILE} records no candidates to fine-tune (it "
                            "predates method.validity_candidates): rerun its derive stage with "
                            f"`dnas-ee run --workdir {workdir} --restart`")
  n = int(record["scored_samples"])
  val = load_dataset(config.data).val
  images, labels = val.images[:n], val.labels[:n]
  rows = []
  for i, candidate in enumerate(record["validity_sample"]):
    candidate_dir = workdir / VALIDITY_DIR / f"candidate_{i}"
    candidate_dir.mkdir(parents=True, exist_ok=True)
    if is_primary():
      Genotype.from_json(candidate["genotype"]).save(candidate_dir / "genotype.json")
    retrain(config, candidate_dir, progress=progress, networks=("early_exit",))
    accuracy, cost = fine_tuned_score(config, candidate_dir, images, labels)
    rows.append(dict(supernet_accuracy=candidate["accuracy"], supernet_cost=candidate["cost"],
                     fine_tuned_accuracy=accuracy, fine_tuned_cost=cost,
                     exits=[e["position"] for e in candidate["genotype"]["exits"]]))
  column = lambda key: [r[key] for r in rows]
  result = dict(candidates=len(rows), method=config.method.name, split="val", scored_samples=n,
                threshold=float(config.exits.search_threshold),
                fine_tune_steps=int(config.retrain.steps),
                cost=f"hw.objective={config.hw.objective!r} relative to the static backbone",
                accuracy_kendall=kendall(column("supernet_accuracy"), column("fine_tuned_accuracy")),
                cost_kendall=kendall(column("supernet_cost"), column("fine_tuned_cost")),
                rows=rows)
  if is_primary():
    (workdir / VALIDITY_FILE).write_text(json.dumps(result, indent=1))
  return result


def validity_markdown(result: dict) -> list[str]:
  """The report's section on the one-shot ranking."""
  fmt = lambda k: ("n/a" if k["tau"] is None else
                   f"{k['tau']:+.2f} (p = {k['p_value']:.2g})")
  lines = ["## One-shot validity", "",
           f"{result['candidates']} of the {result['method']} candidates scored in the supernet, "
           f"each fine-tuned for {result['fine_tune_steps']} steps and scored again on the same "
           f"{result['scored_samples']} validation images (threshold {result['threshold']:.2f}). "
           f"Kendall's tau, supernet vs fine-tuned: accuracy {fmt(result['accuracy_kendall'])}, "
           f"cost {fmt(result['cost_kendall'])} ({result['cost']}).", "",
           "| exits after blocks | supernet acc | fine-tuned acc | supernet cost | fine-tuned cost |",
           "|---|---|---|---|---|"]
  for r in result["rows"]:
    lines.append(f"| {r['exits'] or 'none'} | {r['supernet_accuracy']:.3f} | "
                 f"{r['fine_tuned_accuracy']:.3f} | {r['supernet_cost']:.3f} | "
                 f"{r['fine_tuned_cost']:.3f} |")
  return lines + [""]
