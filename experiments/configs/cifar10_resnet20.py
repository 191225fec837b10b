"""CIFAR-10, ResNet-20 (3 stages x 3 blocks), exits after blocks 1-8.

Data: --config.data.dir=/path/with/cifar-10-python.tar.gz
"""
from dnas_ee.config import base_config, schedule


def get_config(arg=None):
  c = base_config()
  c.data.name, c.data.dir = "cifar10", "../shared/data/cifar10"
  c.data.val_fraction, c.data.calib_fraction = 0.2, 0.05
  c.data.augment_pad, c.data.augment_flip = 4, True
  c.hw.accelerator, c.hw.objective = "edge_tpu_like", "edp"
  c.backbone.options.stage_widths = (16, 32, 64)
  c.backbone.options.blocks_per_stage = (3, 3, 3)
  c.space.exit_positions = (1, 2, 3, 4, 5, 6, 7, 8)
  c.space.branch_resolutions = (8, 4)
  c.search.steps, c.search.warmup_steps, c.search.batch_size = 6000, 1500, 64
  c.search.log_every, c.search.checkpoint_every = 100, 500
  c.retrain.log_every, c.retrain.checkpoint_every = 100, 500
  c.exits.search_threshold = 0.8
  c.retrain.steps, c.retrain.batch_size, c.retrain.lr = 20000, 128, 0.1
  c.loss.lam = schedule("linear", 0.0, 0.5, steps=0)
  if arg == "reduced":  # a CPU-sized run (2 cores, ~20 min): 10k training images, short schedules
    c.data.limit_train = 10000
    c.space.exit_positions = (2, 4, 6)
    c.search.steps, c.search.warmup_steps = 300, 75
    c.retrain.steps, c.retrain.batch_size = 500, 64
    c.search.log_every, c.search.checkpoint_every = 25, 100
    c.retrain.log_every, c.retrain.checkpoint_every = 25, 100
  return c
