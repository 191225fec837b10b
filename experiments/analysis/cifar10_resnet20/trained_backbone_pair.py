"""Issue 19's CIFAR-10 pair, read from the campaign's run dirs: the static ResNet-20 a user
trains (S: the campaign's backbone, two cosine cycles) against the frozen exit search that
starts from it (D: the sweep's `dnas exits-only` member), wall-clock on this machine.

Run:  python experiments/analysis/cifar10_resnet20/trained_backbone_pair.py \
        --runs ~/dnas-ee-runs/cifar10_resnet20 \
        --out experiments/results/cifar10_resnet20/trained_backbone_pair.md

A seed whose D has not finished is listed as such. Times are the runs' own wall-clock
(``time_s`` of the training metrics, ``search_s`` of ``timing.json``, the feature cache's
``build_s``) on this 2-core machine, which the campaign shares with other work: they are
upper bounds of an idle machine's, and the load is not recorded per run.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

D_METHOD = "dnas exits-only"   # the sweep's label of D
SWEEP = Path(__file__).resolve().parents[2] / "sweeps" / "cifar10_resnet20.py"


def _json(path: Path) -> dict:
  return json.loads(path.read_text())


def _train_s(run: Path) -> tuple[float, int]:
  """Wall-clock and steps of a static run's training (its last metrics row)."""
  rows = [json.loads(l) for l in (run / "retrain_early_exit_metrics.jsonl").read_text().splitlines()
          if l.strip()]
  return float(rows[-1]["time_s"]), int(_json(run / "config.json")["retrain"]["steps"])


def _cache_meta(cache_root: Path, backbone: Path) -> dict:
  """``meta.json`` of the feature cache built from ``backbone`` ({}: not found)."""
  for meta in cache_root.glob("*/meta.json"):
    m = _json(meta)
    if Path(m.get("backbone", "")).resolve() == backbone.resolve():
      return m
  return {}


def pair(runs: Path, seed: int, cache_root: Path) -> dict:
  """One seed's row: S's two cycles, D's search, accuracies (None where not run yet)."""
  first, second = runs / f"backbone_s{seed}", runs / f"backbone20_s{seed}"
  row: dict = dict(seed=seed)
  if not (second / "summary.json").exists():
    return row
  (t1, n1), (t2, n2) = _train_s(first), _train_s(second)
  row.update(static_train_s=t1 + t2, static_steps=n1 + n2,
             static_accuracy=_json(second / "summary.json")["static"]["accuracy"])
  from dnas_ee.sweep.spec import load_sweep, sweep_members
  name = next(m.dir_name for m in sweep_members(load_sweep(SWEEP))
              if m.method == D_METHOD and m.seed == seed)
  d = runs / "sweep" / name
  if not (d / "summary.json").exists():
    return row
  summary, timing = _json(d / "summary.json"), _json(d / "timing.json")
  meta = _cache_meta(cache_root, second)
  # An epoch of S: its weight-train images (the cache holds the same split) at S's batch.
  batch = _json(second / "config.json")["retrain"]["batch_size"]
  row.update(member=d.name, search_s=float(timing["search_s"]),
             search_steps=int(_json(d / "config.json")["search"]["steps"]),
             cache_build_s=meta.get("build_s"),
             epoch_steps=meta["train"] / batch if "train" in meta else None,
             final_exit_accuracy=summary["early_exit"]["final_exit_accuracy"],
             early_exit_accuracy=summary["early_exit"]["accuracy"])
  return row


def markdown(rows: list[dict]) -> str:
  def in_epochs(r):   # D's search in epochs of S's training, where the cache says an epoch
    if r["epoch_steps"] is None:
      return ""
    return f", {r['search_s'] / (r['static_train_s'] / r['static_steps'] * r['epoch_steps']):.2f} epochs of S"
  lines = [
      "| seed | S: static training (2 cycles) | D: frozen exit search (cache build included) "
      "| D / S | feature cache build | S static test acc. | D final exit test acc. "
      "| D early-exit test acc. |", "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    if "static_train_s" not in r:
      lines.append(f"| {r['seed']} | not trained yet | | | | | | |")
      continue
    s = f"{r['static_train_s'] / 60:.1f} min ({r['static_steps']} steps)"
    if "search_s" not in r:
      lines.append(f"| {r['seed']} | {s} | not run yet | | | {100 * r['static_accuracy']:.2f}% | | |")
      continue
    build = r["cache_build_s"]
    lines.append(
        f"| {r['seed']} | {s} | {r['search_s'] / 60:.1f} min ({r['search_steps']} steps"
        f"{in_epochs(r)}) | {r['search_s'] / r['static_train_s']:.3f} | "
        + (f"{build / 60:.1f} min" if build is not None else "not found") + " | "
        f"{100 * r['static_accuracy']:.2f}% | {100 * r['final_exit_accuracy']:.2f}% | "
        f"{100 * r['early_exit_accuracy']:.2f}% |")
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", type=Path, required=True, help="the campaign's work dir")
  parser.add_argument("--out", type=Path, required=True)
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--feature-cache", type=Path, default=None,
                      help="the feature cache root (default: dnas-ee's, $DNAS_EE_FEATURE_CACHE)")
  args = parser.parse_args()
  from dnas_ee.train.feature_cache import cache_root
  root = args.feature_cache or cache_root()
  rows = [pair(args.runs.expanduser(), int(s), root) for s in args.seeds.split(",")]
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(markdown(rows))
  args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
  print(markdown(rows))


if __name__ == "__main__":
  main()
