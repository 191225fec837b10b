"""Benchmark of the search step: throughput, compile time, memory, cost-layer share, scaling.

Run:  python experiments/benchmarks/search_step.py --spaces digits,cifar10_resnet20,cifar10_mbv2 \
        --modes softmax,sampled --out FILE [--iters 3] [--torch]

For each space (synthetic inputs of the right shape: throughput does not depend
on pixel values) and each ``search.mixture_mode`` it measures, in one process:
images/s of one search iteration (architecture step + weight step), the same
backbone's plain training step (the static network, fake-quantized at one
width: the retraining step), their ratio, the cold compile time of the search
step and its compile time again from the persistent compilation cache (a fresh
cache directory; in-memory caches cleared), XLA's peak-memory estimate of the
compiled step (and the device's peak when it reports one), and the share of the
step spent in the cost layer. ``digits_scaling`` adds the digits space with
growing exits and ops. ``--torch`` adds a PyTorch ResNet-20 training step
(eager and ``torch.compile``, channels-last) at the same batch, run by
``--torch-python`` (a separate environment: torch is never a dnas-ee dependency).

Extra ``--config.a.b=v`` arguments apply to every space (e.g. ``--config.hw.accelerator=``
to price the search in MACs instead of the config's accelerator LUT).

JSON: ``spaces[space][mode]`` holds ``search_over_plain``, ``search_images_per_s``,
``plain_images_per_s``, ``compile_s`` (trace + lower + XLA compile; ``lower_s`` of it is
tracing and lowering, ``trace_s`` tracing alone), ``cached_compile_s`` (with the search
step's own ``cached_search_step_cache``: hit or miss, and its split ``cached_trace_s``,
``cached_lower_s``, ``cached_load_s``: on a hit, reading the executable back) and the rest;
a mode the library rejects holds ``error`` (the config validation's message).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dnas_ee import pipeline  # noqa: E402
from dnas_ee.config import ConfigError, apply_overrides, load_config_file  # noqa: E402
from dnas_ee.cost import expected_cost  # noqa: E402
from dnas_ee.models.supernet import relaxed_architecture  # noqa: E402
from dnas_ee.relax import Relaxation  # noqa: E402
from flax import nnx  # noqa: E402
from dnas_ee.space.genotype import derive_genotype, genotype_space  # noqa: E402
from dnas_ee.stages.run_dir import train_setup  # noqa: E402
from dnas_ee.train import parallel, retrain as rt  # noqa: E402
from dnas_ee.train.setup import arch_logits  # noqa: E402
from dnas_ee.train.compile_cache import enable_compilation_cache, watch_compilations  # noqa: E402
from dnas_ee.train.objective import search_cost  # noqa: E402
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


CACHE_HITS = []
jax.monitoring.register_event_listener(
    lambda name, **_: CACHE_HITS.append(name) if name == "/jax/compilation_cache/cache_hits" else None)


def bench_search(config, iters):
  """Search-step figures of one (space, mode); the plain step is measured apart."""
  shape = (8, 8, 1) if config.data.name == "digits" else (32, 32, 3)
  bs = config.search.batch_size
  data = synthetic_data(shape, 10, 4 * bs)
  run = pipeline.prepare_search(config, data=data)
  step_fn = jit_search_step(run.setup)
  batches = lambda i: pipeline.search_batches(run, config, i) + (run.ctx,)
  t0 = time.perf_counter()
  traced = step_fn.trace(run.state, *batches(0))
  trace_s = time.perf_counter() - t0
  lowered = traced.lower()
  lower_s = time.perf_counter() - t0
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  # The same program again in a "new process": in-memory caches cleared, the persistent
  # cache (enabled by main) holds the executable the first compile wrote; tracing and
  # lowering to StableHLO are not cached and are paid again.
  jax.clear_caches()
  hits, warm = len(CACHE_HITS), []
  t0 = time.perf_counter()
  with watch_compilations(lambda c: warm.append(c) if c.name == "search_step" else None):
    jit_search_step(run.setup).lower(run.state, *batches(0)).compile()
  cached_compile_s = time.perf_counter() - t0
  cache_hits = len(CACHE_HITS) - hits
  # The search step's own outcome and split: on a hit, "XLA" is loading the executable.
  cached = dict(cached_search_step_cache=warm[-1].cache, cached_trace_s=warm[-1].trace_s,
                cached_lower_s=warm[-1].lower_s, cached_load_s=warm[-1].xla_s) if warm else {}
  fresh = lambda: jax.tree.map(jnp.copy, run.state)   # the step donates its input state
  search_s = timed(step_fn, fresh(), batches, iters)

  # The cost layer alone, forward and backward, as the step runs it (twice: both steps).
  spec, ctx = run.setup.objective, run.ctx
  p = len(run.space.branches)
  live = fresh()
  probs = relaxed_architecture(nnx.merge(run.setup.graphdef, live.params, live.arch, live.stats),
                               Relaxation())
  soft = jnp.full((bs, p), 0.5)

  @jax.jit
  def cost_grad(probs, soft):
    f = lambda pr, so: search_cost(spec, ctx, pr, so)[0]
    return jax.value_and_grad(f, argnums=(0, 1))(probs, soft)
  jax.block_until_ready(cost_grad(probs, soft))
  t0 = time.perf_counter()
  for _ in range(iters * 10):
    out = cost_grad(probs, soft)
  jax.block_until_ready(out)
  cost_s = (time.perf_counter() - t0) / (iters * 10)
  return run, dict(
      batch_size=bs, search_images_per_s=bs / search_s, search_step_ms=1e3 * search_s,
      compile_s=compile_s, trace_s=trace_s, lower_s=lower_s, cached_compile_s=cached_compile_s,
      persistent_cache_hits=cache_hits, **cached,
      xla_peak_memory_mib=(memory_of(compiled) or 0) / 2**20,
      device_peak_memory_mib=(device_peak() or 0) / 2**20,
      cost_layer_share=2 * cost_s / search_s, candidate_exits=p,
      candidate_ops=run.space.num_ops, mixture_mode=config.search.mixture_mode)


def bench_plain(run, config, iters):
  """Seconds per step of the static backbone alone, trained at one width (the retraining step)."""
  live = jax.tree.map(jnp.copy, run.state)
  arch = arch_logits(run.setup.graphdef, live)
  genotype = derive_genotype(run.space, *[np.asarray(arch[k]) for k in
                                          ("exit_logits", "op_logits", "backbone_bit_logits",
                                           "branch_bit_logits")])
  setup, state = train_setup(config, genotype_space(genotype.static), config.seed)
  state = parallel.replicate(run.mesh, state)
  plain_fn = rt.jit_train_step(setup)
  plain_batch = lambda i: (pipeline.search_batches(run, config, i)[0],)
  return timed(plain_fn, state, plain_batch, iters)


def bench_space(config, modes, iters):
  """{mode: figures} of one space; the plain step is measured once and shared by the modes."""
  out, plain_s, bs = {}, None, config.search.batch_size
  for mode in modes:
    c = config.copy_and_resolve_references()
    try:
      apply_overrides(c, [f"--config.search.mixture_mode={mode}"])
      run, r = bench_search(c, iters)
    except (ConfigError, ValueError) as err:   # the library rejects the mode: say why
      out[mode] = dict(error=str(err))
      print(f"  {mode}: not measured: {err}", flush=True)
      continue
    if plain_s is None:
      plain_s = bench_plain(run, c, iters)
    r.update(plain_images_per_s=bs / plain_s, plain_step_ms=1e3 * plain_s,
             search_over_plain=r["search_step_ms"] / (1e3 * plain_s))
    out[mode] = r
    print(f"  {mode:<9}{r['search_images_per_s']:>13.1f}{r['plain_images_per_s']:>12.1f}"
          f"{r['search_over_plain']:>7.2f}{r['compile_s']:>10.1f}{r['cached_compile_s']:>9.1f}"
          f"{r['xla_peak_memory_mib']:>12.0f}{100 * r['cost_layer_share']:>10.2f}%", flush=True)
  return out


SPACES = {
    "digits": ("digits.py", []),
    "cifar10_resnet20": ("cifar10_resnet20.py", []),   # 8 exits, the shipped config
    "cifar10_resnet20_3exits": ("cifar10_resnet20.py", ["--config.space.exit_positions=(2, 4, 6)"]),
    "cifar10_mbv2": ("cifar10_mbv2.py", []),
}


def configs(names, batch, overrides=()):
  for name in names:
    if name == "digits_scaling":
      # Scaling: the digits space (compiles in seconds on a CPU), growing exits and ops.
      all_ops = list(load_config_file(ROOT / "experiments/configs/digits.py").space.branch_ops)
      for positions in ((1,), (1, 2)):
        for k in (2, 5, 9):
          c = load_config_file(ROOT / "experiments/configs/digits.py")
          apply_overrides(c, [f"--config.space.exit_positions={positions}",
                              f"--config.space.branch_ops={tuple(all_ops[-k:])}", *overrides])
          yield f"digits P={len(positions)} K={k}", c
      continue
    if name not in SPACES:
      raise SystemExit(f"unknown space {name!r}; use some of {sorted(SPACES) + ['digits_scaling']}")
    file = SPACES[name][0]
    c = load_config_file(ROOT / "experiments/configs" / file)
    apply_overrides(c, SPACES[name][1] + [f"--config.search.batch_size={batch}", *overrides])
    yield name, c


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--spaces", default="digits,cifar10_resnet20,cifar10_mbv2",
                      help=f"comma-separated: {', '.join(SPACES)}, digits_scaling")
  parser.add_argument("--modes", default="softmax,sampled", help="search.mixture_mode values")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--iters", type=int, default=3)
  parser.add_argument("--torch", action="store_true", help="add the PyTorch ResNet-20 step")
  parser.add_argument("--torch-python", default=os.environ.get("DNAS_EE_TORCH_PYTHON", sys.executable),
                      help="a Python that can import torch (default: $DNAS_EE_TORCH_PYTHON or this one)")
  parser.add_argument("--out", default="")
  args, rest = parser.parse_known_args()
  overrides = [a for a in rest if a.startswith("--config.")]
  if len(overrides) != len(rest):
    parser.error(f"unknown arguments {[a for a in rest if a not in overrides]}")
  cache = enable_compilation_cache(tempfile.mkdtemp(prefix="dnas_ee_bench_cache_"))
  results = {"device": str(jax.devices()[0].device_kind), "platform": jax.default_backend(),
             "devices": jax.device_count(), "jax": jax.__version__, "host": platform.node(),
             "cpu_count": os.cpu_count(), "iters": args.iters, "batch_size": args.batch,
             "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "spaces": {}}
  print(f"device: {results['device']} ({results['platform']} x{results['devices']}); "
        f"compilation cache {cache}")
  print(f"  {'mode':<9}{'search img/s':>13}{'plain img/s':>12}{'ratio':>7}{'compile s':>10}"
        f"{'cached s':>9}{'XLA mem MiB':>12}{'cost share':>11}")
  modes = [m for m in args.modes.split(",") if m]
  for name, config in configs([s for s in args.spaces.split(",") if s], args.batch, overrides):
    print(name, flush=True)
    results["spaces"][name] = bench_space(config, modes, args.iters)
    if args.out:   # written after every space: a long run keeps what it measured
      Path(args.out).write_text(json.dumps(results, indent=2))
  if args.torch:
    from train_step_profile import torch_comparison
    results["torch"] = t = torch_comparison(args.torch_python, args.batch, max(args.iters, 5))
    if t:
      print(f"ResNet-20 training step, batch {args.batch}: JAX {t['jax_plain_images_per_s']:.0f} "
            f"img/s, torch eager {t.get('eager_images_per_s', float('nan')):.0f}, torch.compile "
            f"{t.get('compile_images_per_s', float('nan')):.0f} img/s", flush=True)
  if args.out:
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
  main()
