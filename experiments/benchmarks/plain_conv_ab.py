"""Plain ResNet-20 training step with the backbone's convolutions on lax's own gradient
against ``dnas_ee.models.conv.conv2d``'s hand-written one, one process.

Run:  python experiments/benchmarks/plain_conv_ab.py [--out FILE]

Both steps are compiled, then timed in turns (5 steps a round, 3 rounds, the best round
of each, wall time), batch 64, synthetic data. Why it matters: ``conv2d`` is needed
inside a ``lax.switch`` (``switch_kernels.py``); at the top level this says which is faster.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import train_step_profile as tsp  # noqa: E402
from dnas_ee.config import load_config_file  # noqa: E402
from dnas_ee.models import conv, layers  # noqa: E402
from dnas_ee.train import loop  # noqa: E402
from dnas_ee.train.parallel import make_mesh  # noqa: E402


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  tsp.CLOCK = time.perf_counter
  config = load_config_file(tsp.ROOT / "experiments/configs/cifar10_resnet20.py")
  rng = np.random.default_rng(0)
  b = args.batch
  batch = loop.host_batch(make_mesh(False), rng.standard_normal((2 * b, 32, 32, 3)).astype(np.float32),
                          rng.integers(0, 10, 2 * b).astype(np.int32), 0, 0, b)
  variants = {"lax_gradient": tsp.compiled_step(config, *batch)}
  with tsp.patched(layers, "conv2d_autodiff", conv.conv2d):
    variants["conv2d_gradient"] = tsp.compiled_step(config, *batch)
  best = tsp.interleaved({k: (*v, batch) for k, v in variants.items()}, 5, 3)
  result = dict(command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]), batch_size=b,
                images_per_s={k: b / v for k, v in best.items()})
  print(json.dumps(result, indent=2))
  if args.out:
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
