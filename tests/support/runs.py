"""The tests' reduced digits run: the config overrides, the repo root, a subprocess's environment."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A subprocess's time limit: only a hang reaches it, however loaded the machine (a test
# must not fail because the machine is busy).
HANG_TIMEOUT_S = 3600


def tiny_overrides():
  """A digits search small enough for the test suite (a few seconds per run)."""
  return ["--config.hw.accelerator=",   # shapes only: the shipped LUTs cover the default space
          "--config.hw.objective=bitops",
          "--config.backbone.options.stage_widths=(8, 16, 16)",
          "--config.backbone.options.stem_width=8",
          "--config.space.branch_ops=('conv3_s2_x1', 'dwsep3_s1_x2', 'maxpool2_s2', 'identity')",
          "--config.search.steps=24", "--config.search.warmup_steps=6",
          "--config.search.log_every=4", "--config.search.checkpoint_every=8",
          "--config.retrain.log_every=4", "--config.retrain.checkpoint_every=8",
          "--config.search.batch_size=32", "--config.retrain.steps=24",
          "--config.retrain.batch_size=32"]


# One exit after block 1, one slot of two ops, two widths: for tests of processes, executors
# and sweeps rather than of the space, whose programs then compile in about a third of the
# tiny space's time (append to ``tiny_overrides()`` or ``support.sweep.TINY``).
ONE_EXIT_SPACE = ["--config.space.exit_positions=(1,)", "--config.space.branch_depth=1",
                  "--config.space.branch_resolutions=(2,)",
                  "--config.space.branch_ops=('conv3_s2_x1', 'identity')",
                  "--config.space.bits=(4, 8)"]


def subprocess_env(devices: int = 1):
  """This process's environment with ``devices`` host devices, the repo and ``tests/`` (for
  ``support``) on the path."""
  env = dict(os.environ)
  flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
  env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
  env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
  return env


def warm_config(static_run, *overrides):
  """The tiny digits config started from the trained static run dir ``static_run``."""
  from dnas_ee.config import apply_overrides, base_config
  config = base_config()
  apply_overrides(config, ["--config.hw.accelerator=", "--config.hw.objective=bitops",
                           *tiny_overrides(), f"--config.init.backbone='{static_run}'",
                           *overrides])
  return config
