"""Ablation: how the derived early-exit network is retrained (docs/design.md's known trap).

Joint training pulls early layers towards shallow classifiers and costs the
final exit accuracy. This sweep retrains one searched genotype with each remedy
and reports test accuracy of the final exit and of the early-exit network, next
to the static backbone trained alone.

Run:  python experiments/ablations/exit_training.py --from runs/digits [--out FILE]
(`runs/digits` must hold a finished search: config.json and genotype.json.)
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dnas_ee import pipeline  # noqa: E402
from dnas_ee.config import apply_overrides  # noqa: E402

VARIANTS = {
    "equal weights": [],
    "exit weight 0.3": ["--config.retrain.exit_weight=0.3"],
    "gradient scale 0.25": ["--config.retrain.exit_grad_scale=0.25"],
    "self-distillation": ["--config.retrain.distill_weight=1.0"],
    "grad scale 0.25 + distillation": ["--config.retrain.exit_grad_scale=0.25",
                                       "--config.retrain.distill_weight=1.0"],
}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--from", dest="source", required=True)
  parser.add_argument("--out", default="")
  parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
  args = parser.parse_args()
  source = Path(args.source)
  rows = {}
  for name in args.variants:
    workdir = source.parent / f"{source.name}__{name.replace(' ', '_').replace('+', 'and')}"
    workdir.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "genotype.json", "search_arch.json"):
      shutil.copy(source / f, workdir / f)
    config = pipeline.load_run_config(workdir)
    apply_overrides(config, VARIANTS[name])
    pipeline.save_config(config, workdir / "config.json")
    pipeline.retrain(config, workdir, progress=False)
    summary = pipeline.evaluate(config, workdir)
    rows[name] = dict(overrides=VARIANTS[name], static_accuracy=summary["static"]["accuracy"],
                      final_exit_accuracy=summary["early_exit"]["final_exit_accuracy"],
                      early_exit_accuracy=summary["early_exit"]["accuracy"],
                      macs_reduction=summary["macs_reduction"],
                      exit_rates=summary["early_exit"]["exit_rates"])
    r = rows[name]
    print(f"{name:<32} static {100 * r['static_accuracy']:.2f}%  final exit "
          f"{100 * r['final_exit_accuracy']:.2f}%  early-exit net {100 * r['early_exit_accuracy']:.2f}%"
          f"  MACs -{100 * r['macs_reduction']:.1f}%", flush=True)
  if args.out:
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
  main()
