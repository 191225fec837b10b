"""Seconds per retraining step of the static ResNet-20 (8-bit QAT) at batch 128, on this machine.

Run:  python experiments/analysis/cifar10_resnet20/step_time.py [--steps 20] [--out FILE]

At most ``--steps`` training steps in all: the first compiles (and is timed
apart), the rest are timed together. Synthetic CIFAR-shaped inputs: the step's
cost does not depend on the pixel values. This is the figure the schedules of
``experiments/sweeps/cifar10_resnet20.py`` are sized from (experiments/results/cifar10_resnet20/README.md).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))

from train_step_profile import static_resnet  # noqa: E402
from dnas_ee.config import load_config_file  # noqa: E402
from dnas_ee.train import loop, retrain as rt  # noqa: E402
from dnas_ee.train.parallel import make_mesh  # noqa: E402


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--steps", type=int, default=20, help="training steps in all (>= 2)")
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  config = load_config_file(ROOT / "experiments/configs/cifar10_resnet20.py")
  rng = np.random.default_rng(0)
  n = 4 * args.batch
  images = rng.standard_normal((n, 32, 32, 3)).astype(np.float32)
  labels = rng.integers(0, 10, n).astype(np.int32)
  mesh = make_mesh(False)
  batch = lambda i: loop.host_batch(mesh, images, labels, 0, i, args.batch)
  setup, state = static_resnet(config)
  step = rt.jit_train_step(setup)
  t0 = time.perf_counter()
  state, out = step(state, batch(0))
  jax.block_until_ready(out)
  first = time.perf_counter() - t0
  t0, c0 = time.perf_counter(), time.process_time()
  for i in range(1, args.steps):
    state, out = step(state, batch(i))
  jax.block_until_ready((state, out))
  per_step = (time.perf_counter() - t0) / (args.steps - 1)
  # CPU seconds per step (all threads): on a machine shared with other jobs the wall
  # clock measures the load; CPU time / cores is the step on an idle machine, if the
  # step used every core perfectly (a lower bound on its wall clock there).
  cpu_per_step = (time.process_time() - c0) / (args.steps - 1)
  result = dict(batch=args.batch, steps=args.steps, first_step_s=round(first, 2),
                step_s=round(per_step, 4), images_per_s=round(args.batch / per_step, 1),
                cpu_s_per_step=round(cpu_per_step, 4),
                idle_step_s_lower_bound=round(cpu_per_step / os.cpu_count(), 4),
                load_average_1min=round(os.getloadavg()[0], 2), cpu_count=os.cpu_count(),
                jax=jax.__version__, device=str(jax.devices()[0]))
  print(json.dumps(result))
  if args.out:
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
  main()
