"""Digits searched against an accelerator's energy-delay product.

Arg: the accelerator (a file in hwmodels/accelerators/), e.g.
  dnas-ee run --config experiments/configs/digits_hw.py:eyeriss_like --workdir runs/digits_eyeriss
"""
from dnas_ee.config import base_config


def get_config(arg="edge_tpu_like"):
  c = base_config()
  c.hw.accelerator = arg
  c.hw.objective = "edp"
  return c
