"""Benchmark of the search step: throughput, compile time, memory, cost-layer share, scaling.

Run:  python experiments/benchmarks/search_step.py [--quick] [--out FILE]

For the digits and the CIFAR-10 MobileNetV2 spaces (synthetic inputs of the
right shape: throughput does not depend on pixel values) it measures, in one
process: images/s of one search iteration (architecture step + weight step),
the same backbone's plain training step (the static network, fake-quantized at
one width: the retraining step), their ratio, the compile time of the search
step, XLA's peak-memory estimate of the compiled step (and the device's peak
when it reports one), the share of the step spent in the cost layer, and
throughput as candidate exits and ops grow.
"""
from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
import time
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dnas_ee import pipeline  # noqa: E402
from dnas_ee.config import apply_overrides, load_config_file  # noqa: E402
from dnas_ee.cost import expected_cost  # noqa: E402
from dnas_ee.models.supernet import relaxed_architecture  # noqa: E402
from dnas_ee.relax import Relaxation  # noqa: E402
from flax import nnx  # noqa: E402
from dnas_ee.space.genotype import derive_genotype, genotype_space  # noqa: E402
from dnas_ee.train import retrain as rt  # noqa: E402
from dnas_ee.train.objective import cost_term  # noqa: E402
from dnas_ee.train.search import jit_search_step  # noqa: E402


def synthetic_data(shape, num_classes, n):
  rng = np.random.default_rng(0)
  split = lambda: types.SimpleNamespace(
      images=rng.standard_normal((n,) + tuple(shape)).astype(np.float32),
      labels=rng.integers(0, num_classes, n).astype(np.int32))
  return types.SimpleNamespace(train=split(), val=split(), calib=split(), test=split(),
                               image_shape=tuple(shape), num_classes=num_classes, name="synthetic")


def timed(fn, state, args_for_step, iters):
  """Runs ``iters`` steps after one warm-up; returns seconds per step."""
  state, out = fn(state, *args_for_step(0))
  jax.block_until_ready(out)
  t0 = time.perf_counter()
  for i in range(iters):
    state, out = fn(state, *args_for_step(i + 1))
  jax.block_until_ready((state, out))
  return (time.perf_counter() - t0) / iters


def memory_of(compiled):
  try:
    m = compiled.memory_analysis()
    return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
               - getattr(m, "alias_size_in_bytes", 0))
  except Exception:  # not every backend reports it
    return None


def device_peak():
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use")


def bench_space(config, iters):
  shape = (8, 8, 1) if config.data.name == "digits" else (32, 32, 3)
  bs = config.search.batch_size
  data = synthetic_data(shape, 10, 4 * bs)
  run = pipeline.prepare_search(config, data=data)
  step_fn = jit_search_step(run.setup)
  batches = lambda i: pipeline.search_batches(run, config, i) + (run.ctx,)
  t0 = time.perf_counter()
  compiled = step_fn.lower(run.state, *batches(0)).compile()
  compile_s = time.perf_counter() - t0
  fresh = lambda: jax.tree.map(jnp.copy, run.state)   # the step donates its input state
  search_s = timed(step_fn, fresh(), batches, iters)

  # The plain step: the static backbone alone, trained with one width (the retraining step).
  arch = pipeline._arch_logits(run.setup.graphdef, fresh())
  genotype = derive_genotype(run.space, *[np.asarray(arch[k]) for k in
                                          ("exit_logits", "op_logits", "backbone_bit_logits",
                                           "branch_bit_logits")])
  setup, state = pipeline._train_setup(config, genotype_space(genotype.static), config.seed)
  state = pipeline.parallel.replicate(run.mesh, state)
  plain_fn = rt.jit_train_step(setup)
  plain_batch = lambda i: (pipeline.search_batches(run, config, i)[0],)
  plain_s = timed(plain_fn, state, plain_batch, iters)

  # The cost layer alone, forward and backward, as the step runs it (twice: both steps).
  spec, ctx = run.setup.objective, run.ctx
  p, nb = len(run.space.branches), run.space.num_bits
  live = fresh()
  probs = relaxed_architecture(nnx.merge(run.setup.graphdef, live.params, live.arch, live.stats),
                               Relaxation())
  soft = jnp.full((bs, p), 0.5)

  @jax.jit
  def cost_grad(probs, soft):
    f = lambda pr, so: cost_term(spec, ctx, expected_cost(ctx.tables, pr, so, spec.positions))
    return jax.value_and_grad(f, argnums=(0, 1))(probs, soft)
  jax.block_until_ready(cost_grad(probs, soft))
  t0 = time.perf_counter()
  for _ in range(iters * 10):
    out = cost_grad(probs, soft)
  jax.block_until_ready(out)
  cost_s = (time.perf_counter() - t0) / (iters * 10)
  del nb
  return dict(
      batch_size=bs, search_images_per_s=bs / search_s, search_step_ms=1e3 * search_s,
      plain_images_per_s=bs / plain_s, plain_step_ms=1e3 * plain_s,
      search_over_plain=search_s / plain_s, compile_s=compile_s,
      xla_peak_memory_mib=(memory_of(compiled) or 0) / 2**20,
      device_peak_memory_mib=(device_peak() or 0) / 2**20,
      cost_layer_share=2 * cost_s / search_s, candidate_exits=p,
      candidate_ops=run.space.num_ops)


def configs(quick):
  digits = load_config_file(ROOT / "experiments/configs/digits.py")
  mbv2 = load_config_file(ROOT / "experiments/configs/cifar10_mbv2.py")
  apply_overrides(mbv2, ["--config.search.batch_size=64"])
  yield "digits", digits
  yield "cifar10_mbv2", mbv2
  if quick:
    return
  # Scaling: the digits space (compiles in seconds on a CPU), growing exits and ops.
  all_ops = list(digits.space.branch_ops)
  for positions in ((1,), (1, 2)):
    for k in (2, 5, 9):
      c = load_config_file(ROOT / "experiments/configs/digits.py")
      apply_overrides(c, [f"--config.space.exit_positions={positions}",
                          f"--config.space.branch_ops={tuple(all_ops[-k:])}"])
      yield f"digits P={len(positions)} K={k}", c


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true", help="only the two main spaces")
  parser.add_argument("--iters", type=int, default=10)
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  results = {"device": str(jax.devices()[0].device_kind), "platform": jax.default_backend(),
             "devices": jax.device_count(), "jax": jax.__version__, "host": platform.node(),
             "spaces": {}}
  print(f"device: {results['device']} ({results['platform']} x{results['devices']})")
  header = (f"{'space':<22}{'search img/s':>13}{'plain img/s':>12}{'ratio':>7}{'compile s':>10}"
            f"{'XLA mem MiB':>12}{'cost share':>11}")
  print(header)
  for name, config in configs(args.quick):
    r = bench_space(config, args.iters)
    results["spaces"][name] = r
    print(f"{name:<22}{r['search_images_per_s']:>13.1f}{r['plain_images_per_s']:>12.1f}"
          f"{r['search_over_plain']:>7.2f}{r['compile_s']:>10.1f}{r['xla_peak_memory_mib']:>12.0f}"
          f"{100 * r['cost_layer_share']:>10.2f}%", flush=True)
  if args.out:
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
  main()
