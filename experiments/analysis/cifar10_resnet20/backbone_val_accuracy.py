"""Accuracy of trained backbones on the architecture-val split (the split the campaign's
backbone budget is chosen on; the test split is never looked at for it).

Run:  python experiments/analysis/cifar10_resnet20/backbone_val_accuracy.py RUN_DIR [RUN_DIR ...]
"""
import json
import sys
from pathlib import Path


def val_accuracy(run_dir: Path) -> float:
  from dnas_ee.data import load_dataset
  from dnas_ee.stages.run_dir import exit_logits, load_run_config, load_trained
  config = load_run_config(run_dir)
  val = load_dataset(config.data).val
  _, setup, state = load_trained(config, run_dir, "static")
  logits = exit_logits(setup, state, val.images, config.evaluate.batch_size)[-1]
  return float((logits.argmax(-1) == val.labels).mean())


def main() -> None:
  for arg in sys.argv[1:]:
    print(json.dumps(dict(run_dir=arg, val_accuracy=val_accuracy(Path(arg)))))


if __name__ == "__main__":
  main()
