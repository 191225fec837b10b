"""The embedded default: scikit-learn's digits (8x8), a 3-block ResNet, exits after blocks 1-2.

Run: dnas-ee run --config experiments/configs/digits.py --workdir runs/digits
"""
from dnas_ee.config import base_config


def get_config(arg=None):
  c = base_config()
  # Searched against the energy-delay product on edge_tpu_like (shipped LUT): every
  # axis, bit widths included, has a price.
  c.hw.accelerator, c.hw.objective = "edge_tpu_like", "edp"
  if arg == "tiny":  # the test suite's reduced run
    c.search.steps, c.search.warmup_steps, c.retrain.steps = 60, 20, 60
    c.search.log_every, c.search.checkpoint_every = 10, 20
    c.retrain.log_every, c.retrain.checkpoint_every = 10, 20
  return c
