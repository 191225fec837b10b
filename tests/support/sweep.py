"""The sweep, method and stage tests' reduced digits config and space (MACs only)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The tests' reduced digits space (as support.runs.tiny_overrides), MACs only.
TINY = ["--config.hw.accelerator=", "--config.hw.objective=macs",
        "--config.backbone.options.stage_widths=(8, 16, 16)",
        "--config.backbone.options.stem_width=8",
        "--config.space.branch_ops=('conv3_s2_x1', 'dwsep3_s1_x2', 'maxpool2_s2', 'identity')",
        "--config.search.steps=16", "--config.search.warmup_steps=4",
        "--config.search.log_every=4", "--config.search.checkpoint_every=8",
        "--config.search.batch_size=32", "--config.retrain.steps=16",
        "--config.retrain.batch_size=32", "--config.retrain.train_on_val=False",
        "--config.method.evaluations=16", "--config.method.population=8"]


def tiny_config(*overrides):
  from dnas_ee.config import apply_overrides, load_config_file
  config = load_config_file(ROOT / "experiments" / "configs" / "digits.py")
  apply_overrides(config, TINY + list(overrides))
  return config


def tiny_space(config=None):
  from dnas_ee.train import build
  return build.build_space(config or tiny_config(), (8, 8, 1), 10)
