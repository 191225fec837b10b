"""Where the search step's compile time goes: trace, lower, XLA; flax's BatchNorm against ours.

Run (from the repository root, one process, one measurement at a time):
  python experiments/analysis/compile_time.py --spaces digits,cifar10_resnet20 \
    --modes softmax,sampled --out experiments/results/compile_time_cpu.json \
    [--ynn-off digits] [--step-iters 3]

For each (space, search.mixture_mode), on the benchmark's synthetic batch of 64 and priced
in MACs (as ``search_step.py`` is run for docs/benchmarks.md): the search step is traced
twice in the same process, once with flax's own ``nnx.BatchNorm.__call__`` (the JSON's
"before") and once with ``dnas_ee.models.layers.BatchNorm`` ("after"); both traces must
give the same number of jaxpr equations (the test suite checks the jaxpr text is identical
on a tiny space). The jaxpr is then lowered and compiled by XLA once (the same program
either way). ``--ynn-off`` compiles it again with XLA:CPU's YNNPACK fusions off
(``xla_cpu_experimental_ynn_fusion_type=""``, an option dnas-ee does not turn on) and times
the step both ways (``--step-iters``). Results: docs/benchmarks.md, "Compile time".
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))

from flax import nnx  # noqa: E402
from jax.extend.core import jaxprs_in_params  # noqa: E402

from dnas_ee import pipeline  # noqa: E402
from dnas_ee.config import apply_overrides  # noqa: E402
from dnas_ee.models.layers import BatchNorm  # noqa: E402
from dnas_ee.train.search import jit_search_step  # noqa: E402
from search_step import configs, synthetic_data  # noqa: E402

OURS = BatchNorm.__call__


def count_eqns(jaxpr) -> int:
  """Equations of a jaxpr, those of its sub-jaxprs (grad, switch, scan bodies) included."""
  n = 0
  for eqn in jaxpr.eqns:
    n += 1
    for sub in jaxprs_in_params(eqn.params):
      n += count_eqns(sub)
  return n


def timed_trace(setup, args, call):
  """Traces a fresh jitted step (in-memory caches cleared: nothing is reused)."""
  BatchNorm.__call__ = call
  jax.clear_caches()
  try:
    t0 = time.perf_counter()
    traced = jit_search_step(setup).trace(*args)
    return traced, time.perf_counter() - t0
  finally:
    BatchNorm.__call__ = OURS


def step_ms(compiled, state, args, iters):
  state = jax.tree.map(jnp.copy, state)   # the step donates its state
  state, out = compiled(state, *args)
  jax.block_until_ready(out)
  t0 = time.perf_counter()
  for _ in range(iters):
    state, out = compiled(state, *args)
  jax.block_until_ready((state, out))
  return 1e3 * (time.perf_counter() - t0) / iters


def measure(config, ynn_off: bool, iters: int) -> dict:
  shape = (8, 8, 1) if config.data.name == "digits" else (32, 32, 3)
  run = pipeline.prepare_search(config, data=synthetic_data(shape, 10, 4 * config.search.batch_size))
  args = (run.state,) + pipeline.search_batches(run, config, 0) + (run.ctx,)
  # "after" first: whatever the first trace of a process pays once goes against it.
  after, after_s = timed_trace(run.setup, args, OURS)
  eqns = count_eqns(after.jaxpr.jaxpr)
  before, before_s = timed_trace(run.setup, args, nnx.BatchNorm.__call__)
  before_eqns = count_eqns(before.jaxpr.jaxpr)
  del before
  if eqns != before_eqns:
    raise SystemExit(f"the two traces differ: {before_eqns} vs {eqns} equations")
  t0 = time.perf_counter()
  lowered = after.lower()
  lower_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  compiled = lowered.compile()
  xla_s = time.perf_counter() - t0
  r = dict(jaxpr_equations=eqns, trace_s_before=before_s, trace_s_after=after_s, lower_s=lower_s,
           xla_compile_s=xla_s, compile_s_before=before_s + lower_s + xla_s,
           compile_s_after=after_s + lower_s + xla_s)
  if ynn_off:
    t0 = time.perf_counter()
    compiled_off = lowered.compile(compiler_options={"xla_cpu_experimental_ynn_fusion_type": ""})
    r["xla_compile_s_ynn_off"] = time.perf_counter() - t0
    r["step_ms"] = step_ms(compiled, run.state, args[1:], iters)
    r["step_ms_ynn_off"] = step_ms(compiled_off, run.state, args[1:], iters)
  return r


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--spaces", default="digits,cifar10_resnet20")
  parser.add_argument("--modes", default="softmax,sampled")
  parser.add_argument("--ynn-off", default="", help="comma-separated spaces to also compile "
                      "and time with YNNPACK fusions off")
  parser.add_argument("--step-iters", type=int, default=3)
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  results = {"command": " ".join(["compile_time.py"] + sys.argv[1:]), "jax": jax.__version__,
             "device": str(jax.devices()[0].device_kind), "cpu_count": os.cpu_count(),
             "load_average_at_start": os.getloadavg(), "spaces": {}}
  overrides = ["--config.hw.accelerator=", "--config.hw.objective=macs"]
  for name, config in configs(args.spaces.split(","), 64, overrides):
    for mode in args.modes.split(","):
      c = config.copy_and_resolve_references()
      apply_overrides(c, [f"--config.search.mixture_mode={mode}"])
      r = measure(c, name in args.ynn_off.split(","), args.step_iters)
      r["load_average_after"] = os.getloadavg()
      results["spaces"].setdefault(name, {})[mode] = r
      print(name, mode, json.dumps({k: round(v, 2) if isinstance(v, float) else v
                                    for k, v in r.items()}), flush=True)
      if args.out:   # written after every measurement: a long run keeps what it measured
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
  main()
