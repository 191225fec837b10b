"""CIFAR-10, MobileNetV2-CIFAR backbone (17 blocks), like reference A.

A variant of cifar10_resnet20.py (same data, schedules and search settings).
Data: --config.data.dir=/path/with/cifar-10-python.tar.gz
"""
from pathlib import Path

import ml_collections

from dnas_ee.config import load_config_file


def get_config(arg=None):
  c = load_config_file(Path(__file__).with_name("cifar10_resnet20.py"))
  c.backbone.name = "mobilenetv2_cifar"
  with c.backbone.unlocked():
    c.backbone.options = ml_collections.ConfigDict(dict(width_mult=1.0, head_width=1280))
  c.space.exit_positions = (3, 5, 7, 10, 13, 16)
  if arg == "reduced":  # a CPU-sized run: half width, 10k training images, short schedules
    c.backbone.options.width_mult = 0.5
    c.data.limit_train = 10000
    c.search.steps, c.search.warmup_steps, c.retrain.steps = 800, 200, 1500
    c.search.log_every, c.search.checkpoint_every = 50, 200
    c.retrain.log_every, c.retrain.checkpoint_every = 50, 200
  return c
