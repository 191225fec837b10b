"""Checks, without training, that every member of the CIFAR-10 sweeps can run.

Run:  python experiments/analysis/cifar10_resnet20/check_sweeps.py

For each member of experiments/sweeps/cifar10_{resnet20,resnet20_once,mbv2_quadcore}.py:
its config resolves (``sweep_members``) and passes the checks a stage makes before
writing anything (``validate_config``: keys, method, space, calibration target), and
the accelerator's shipped LUT prices every op of its search space (``build_cost_source``).
Prints one line per member: run dir, schedule, exits, accelerator.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SWEEPS = ("cifar10_resnet20.py", "cifar10_resnet20_once.py", "cifar10_mbv2_quadcore.py")


def main() -> int:
  from dnas_ee.data.shapes import dataset_shape
  from dnas_ee.stages.run_config import validate_config
  from dnas_ee.sweep.spec import load_sweep, sweep_members
  from dnas_ee.train import build
  checked = {}
  for name in SWEEPS:
    members = sweep_members(load_sweep(ROOT / "experiments" / "sweeps" / name))
    print(f"{name}: {len(members)} members")
    for m in members:
      c = m.config
      validate_config(c)
      key = (c.backbone.name, str(c.backbone.options.to_dict()), c.space.exit_positions,
             c.hw.accelerator)
      if key not in checked:   # one LUT check per distinct space and accelerator
        space = build.build_space(c, *dataset_shape(c.data))
        build.build_cost_source(c, space)
        checked[key] = len(space.branches)
      print(f"  {m.dir_name}: method {c.method.name} ({c.search.mixture_mode}), "
            f"search {c.search.steps} x {c.search.batch_size} (warm-up {c.search.warmup_steps}), "
            f"retrain {c.retrain.steps} x {c.retrain.batch_size}, calibrate {c.calibrate.mode}, "
            f"{checked[key]} candidate exits, {c.hw.accelerator} {c.hw.objective}, "
            f"train limit {c.data.limit_train or 'none'}")
  print(f"ok: {len(checked)} distinct spaces priced by their LUTs")
  return 0


if __name__ == "__main__":
  sys.exit(main())
