"""The compute plan of the CIFAR-10 sweeps: wall-clock per member and in all, and Reference B's search cost.

Run:  python experiments/analysis/cifar10_resnet20/plan.py [--step-time step_time_cpu.json]

Everything is counted in plain steps: P, the seconds of one retraining step of the
static ResNet-20 at batch 128 (measured by step_time.py). Schedules come from the
sweep files themselves; the other factors are the assumptions below, each with its
source. Prints markdown (the README's "Compute plan" section is this output).
"""
from __future__ import annotations

import argparse
import json
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "experiments" / "results" / "cifar10_resnet20"

# Assumptions, in units of P (one plain batch-128 step), with their sources.
# Issue 9's table (ResNet-20, 8 candidate exits, softmax mixtures): a search step at
# batch 64 is 7.6x a plain step at batch 64, and a batch-64 step is ~P/2 (CPU time
# grows about linearly with the batch): one search step = 3.8 P. The random/NSGA-II
# supernet costs the same per step (the architecture update is computed and masked
# while the architecture is frozen, dnas_ee/train/search.py).
SEARCH_STEP = 7.6 / 2
# The sampled (single-path) mode: issue 9's digits measurement, 2.8x plain against
# 7.7x for softmax (experiments/results/search_step_cpu.json at the time of writing).
SAMPLED_STEP = SEARCH_STEP * 2.8 / 7.7
# The early-exit network's retraining step against the static one (branches at 8x8 and
# 4x4, distillation): assumed 1.15 (hand_placed, 8 branches, is the worst case).
EARLY_EXIT_STEP = 1.15
# Scoring a random/NSGA-II candidate: one supernet forward per val image, a third of a
# forward+backward pass; a search step is two passes over 64 images.
SCORE_PER_IMAGE = SEARCH_STEP / (2 * 64) / 3
# Per member, outside the training loops: compiles, calibration (2,500 images),
# evaluation of both networks on the 10,000 test images and 50 batch-1 latencies.
FIXED_S = 300.0
# Reference B (AEBNAS, github.com/Saeed-Khalilian/AEBNAS, README's CIFAR-10 command and
# AEBNAS.py defaults): 100 initial candidates (--n_doe 100), then 30 iterations (the loop
# runs iterations + 1 times) of 8 candidates (--n_iter 8), each trained 5 epochs
# (--n_epochs 5); its surrogate NSGA-II runs population 40 x 20 generations on
# predictions. A plain NSGA-II training every candidate at those settings: 800.
AEBNAS_TRAINED = 100 + (30 + 1) * 8
PLAIN_NSGA2_TRAINED = 40 * 20
CANDIDATE_EPOCHS = 5
SEARCH_TRAIN_IMAGES = 37_500          # the weight-training split (candidates train on it)
# Plain-step scenarios besides this machine's measurement: issue 9's best JAX figure
# (293 img/s at batch 64) and PyTorch's torch.compile step on the same CPU (787 img/s
# at batch 128, the lower end of issue 9's 787-1058), the speed issue's direction.
SCENARIOS = (("issue 9, best JAX plain step (293 img/s)", 128 / 293),
             ("torch.compile parity (787 img/s)", 128 / 787))


def member_units(method: str, mode: str, search_steps: int, retrain_steps: int,
                 score_samples: int, evaluations: int) -> dict:
  """{stage: P units} of one member run alone (its own static reference and search)."""
  both = retrain_steps * (1 + (1.0 if method == "static" else EARLY_EXIT_STEP))
  out = dict(search=0.0, score=0.0, retrain=both)
  if method in ("dnas", "random", "evolutionary"):
    out["search"] = search_steps * (SAMPLED_STEP if mode == "sampled" else SEARCH_STEP)
  if method in ("random", "evolutionary"):
    out["score"] = evaluations * score_samples * SCORE_PER_IMAGE
  return out


def step_time_from_metrics(path: Path) -> dict:
  """P from a training loop's records: seconds per step between the first record (which
  holds the compile) and the last, in step_time.py's JSON form."""
  records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  if len(records) < 2:
    raise SystemExit(f"{path}: need two records to time the steps between them")
  first, last = records[0], records[-1]
  step_s = (last["time_s"] - first["time_s"]) / (last["step"] - first["step"])
  return dict(batch=128, steps=last["step"] - first["step"], step_s=step_s,
              images_per_s=128 / step_s, cpu_s_per_step=float("nan"),
              idle_step_s_lower_bound=step_s, load_average_1min=0.0, cpu_count=2,
              source=f"{path}, steps {first['step']}-{last['step']}")


def hours(seconds: float) -> str:
  return f"{seconds / 3600:.1f} h"


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--step-time", default=str(RESULTS / "step_time_cpu_idle.json"))
  parser.add_argument("--metrics", default="",
                      help="a retraining metrics.jsonl of the static ResNet-20 at batch 128 "
                           "(e.g. the campaign's shared static backbone): P from its records "
                           "instead of --step-time")
  args = parser.parse_args()
  from dnas_ee.sweep.spec import load_sweep, sweep_members
  measured = (step_time_from_metrics(Path(args.metrics)) if args.metrics
              else json.loads(Path(args.step_time).read_text()))
  # On an idle machine the measured wall-clock is P; under load, CPU time / cores is a
  # lower bound on it (2.0 s wall against a 1.6 s bound, measured idle).
  p_idle = (measured["step_s"] if measured["load_average_1min"] < 1.5
            else measured["idle_step_s_lower_bound"])
  base = runpy.run_path(str(ROOT / "experiments/sweeps/cifar10_resnet20.py"))
  members = [m for name in ("cifar10_resnet20.py", "cifar10_resnet20_once.py")
             for m in sweep_members(load_sweep(ROOT / "experiments/sweeps" / name))]
  scenarios = (("this machine, idle (measured)", p_idle),) + SCENARIOS

  if "source" in measured:
    print(f"P measured from the training loop's records ({measured['source']}, the only job "
          f"on the machine): {measured['step_s']:.2f} s per step at batch 128 "
          f"({measured['images_per_s']:.0f} img/s).\n")
  else:
    print(f"P measured (step_time.py, {measured['steps']} steps at batch {measured['batch']}): "
          f"{measured['step_s']:.2f} s wall at load average {measured['load_average_1min']} on "
          f"{measured['cpu_count']} cores ({measured['images_per_s']:.1f} img/s); "
          f"{measured['cpu_s_per_step']:.2f} CPU-s per step, so at best "
          f"{measured['idle_step_s_lower_bound']:.2f} s if both cores were used perfectly; P = "
          f"{p_idle:.2f} s ({128 / p_idle:.0f} img/s) on the idle machine.\n")
  print(f"Schedules: retraining {base['RETRAIN_STEPS']} steps x {base['RETRAIN_BATCH']} "
        f"({base['RETRAIN_STEPS'] * base['RETRAIN_BATCH'] / base['TRAIN_IMAGES']:.1f} epochs of "
        f"{base['TRAIN_IMAGES']:,} images) per network, two networks per member (the derived "
        f"one and the static reference); search {base['SEARCH_STEPS']} steps x 64.\n")
  header = "| member | P units (search + scoring + retraining) | " + " | ".join(
      f"P = {p:.2f} s: {label}" for label, p in scenarios) + " |"
  print(header)
  print("|---" * (2 + len(scenarios)) + "|")
  seen, total_units = {}, 0.0
  for m in members:
    c = m.config
    u = member_units(c.method.name, c.search.mixture_mode, c.search.steps, c.retrain.steps,
                     c.method.score_samples, c.method.evaluations)
    units = sum(u.values())
    total_units += units
    seen.setdefault(m.method, [units, 0])[1] += 1
  for method, (units, count) in seen.items():
    u = member_units(*(("dnas", "sampled") if method == "dnas sampled" else (method, "softmax")),
                     base["SEARCH_STEPS"], base["RETRAIN_STEPS"], base["SCORE_SAMPLES"], 200)
    parts = " + ".join(f"{u[k]:,.0f}" for k in ("search", "score", "retrain"))
    print(f"| {method} (x{count}) | {parts} = {units:,.0f} | " + " | ".join(
        hours(units * p + FIXED_S) for _, p in scenarios) + " |")
  print(f"| **all {len(members)} members** | {total_units:,.0f} | " + " | ".join(
      f"**{hours(total_units * p + FIXED_S * len(members))}**" for _, p in scenarios) + " |")
  # In a sweep (dnas_ee/stages/shared_training.py) the static backbone is retrained once
  # per seed and copied into every member of that seed (a static member trains nothing
  # else), and the random and evolutionary members of a seed share one supernet.
  shared_units, static_seeds, scored_seeds = 0.0, set(), set()
  for m in members:
    c = m.config
    u = member_units(c.method.name, c.search.mixture_mode, c.search.steps, c.retrain.steps,
                     c.method.score_samples, c.method.evaluations)
    static_seeds.add(c.seed)
    retrain = 0.0 if c.method.name == "static" else c.retrain.steps * EARLY_EXIT_STEP
    search = u["search"]
    if c.method.name in ("random", "evolutionary"):
      search = 0.0 if c.seed in scored_seeds else search
      scored_seeds.add(c.seed)
    shared_units += search + u["score"] + retrain
  shared_units += len(static_seeds) * base["RETRAIN_STEPS"]
  print(f"| **all {len(members)} members, trainings shared as the sweep runner shares them** | "
        f"{shared_units:,.0f} | " + " | ".join(
            f"**{hours(shared_units * p + FIXED_S * len(members))}**" for _, p in scenarios)
        + " |")
  dnas_units = dict(seen)["dnas"][0]
  print(f"\nOne dnas member fits an hour when P <= {(3600 - FIXED_S) / dnas_units:.2f} s "
        f"({128 * dnas_units / (3600 - FIXED_S):.0f} img/s); a static member when P <= "
        f"{(3600 - FIXED_S) / dict(seen)['static'][0]:.2f} s.\n")

  candidate_steps = CANDIDATE_EPOCHS * SEARCH_TRAIN_IMAGES / 128 * EARLY_EXIT_STEP
  dnas_search = base["SEARCH_STEPS"] * SEARCH_STEP
  print("Reference B's search here (NSGA-II training every candidate for 5 epochs):\n")
  print("| search | candidates trained | P units | " + " | ".join(
      f"P = {p:.2f} s" for _, p in scenarios) + " | / dnas search |")
  print("|---" * (4 + len(scenarios)) + "|")
  rows = (("AEBNAS as published (surrogate-assisted)", AEBNAS_TRAINED),
          ("plain NSGA-II, population 40 x 20 generations", PLAIN_NSGA2_TRAINED))
  for label, n in rows:
    units = n * candidate_steps
    print(f"| {label} | {n} x {CANDIDATE_EPOCHS} epochs | {units:,.0f} | " + " | ".join(
        hours(units * p) for _, p in scenarios) + f" | {units / dnas_search:.0f}x |")
  print(f"| dnas search ({base['SEARCH_STEPS']} steps x 64, softmax) | one supernet | "
        f"{dnas_search:,.0f} | " + " | ".join(hours(dnas_search * p) for _, p in scenarios)
        + " | 1x |")


if __name__ == "__main__":
  main()
