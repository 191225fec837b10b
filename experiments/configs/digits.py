"""The embedded default: scikit-learn's digits (8x8), a 3-block ResNet, exits after blocks 1-2.

Run: dnas-ee run --config experiments/configs/digits.py --workdir runs/digits
"""
from dnas_ee.config import base_config


def get_config(arg=None):
  c = base_config()
  # Searched against MACs; latency, energy and EDP are reported from the shipped LUT.
  c.hw.accelerator = "edge_tpu_like"
  if arg == "tiny":  # the test suite's reduced run
    c.search.steps, c.search.warmup_steps, c.retrain.steps = 60, 20, 60
    c.search.log_every, c.search.checkpoint_every = 10, 20
  return c
