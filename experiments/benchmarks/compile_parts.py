"""Where the search step's compile time goes: tracing, lowering, XLA, and the program's
size per part (backbone, exit branches, head, objective with the cost layer, optimizers).

Run:  python experiments/benchmarks/compile_parts.py --spaces digits,cifar10_resnet20 \
        --modes softmax,sampled [--exits scan,vmap,unrolled] [--compile [--steps 3]] [--out FILE] \
        [--config.a.b=v ...]

For each space (synthetic inputs, as ``search_step.py``) and ``search.mixture_mode`` it
traces and lowers the search step (seconds of each), counts the equations of its jaxpr
(forward and backward, every nested jaxpr included) by the part whose named scope they
were traced in (``dnas_ee.models.supernet.Supernet.__call__``, ``dnas_ee.train.search``)
and the StableHLO operations of the lowered module (what XLA receives); ``--compile``
adds XLA's compile time and the size of the serialized executable (loading it is what a
persistent-cache hit costs) and ``--steps`` the seconds per step. ``--exits scan`` measures
the program with the exit branches of one stage as one scan (``Supernet.scan_exits``),
``--exits vmap`` as one vmap (``vmapped_exits``, an experiment). No persistent cache is
used here.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import re
import sys
import time
from pathlib import Path

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dnas_ee import pipeline  # noqa: E402
from dnas_ee.config import apply_overrides, load_config_file  # noqa: E402
from dnas_ee.models import supernet  # noqa: E402
from dnas_ee.train.search import jit_search_step, split_model  # noqa: E402
from search_step import SPACES, synthetic_data  # noqa: E402

PART_PATTERN = re.compile(r"\b(backbone|exits|head|objective|optimizer)\b")


def part_of(name_stack: str, inherited: str) -> str:
  """The innermost named part in ``name_stack``, else ``inherited``."""
  found = PART_PATTERN.findall(name_stack)
  return found[-1] if found else inherited


def _sub_jaxprs(params: dict):
  for value in params.values():
    for v in value if isinstance(value, (tuple, list)) else (value,):
      if isinstance(v, jax.extend.core.ClosedJaxpr):
        yield v.jaxpr
      elif isinstance(v, jax.extend.core.Jaxpr):
        yield v


def count_equations(jaxpr, counts: collections.Counter, inherited: str = "other") -> None:
  """Adds the equations of ``jaxpr`` and of every jaxpr nested in it to ``counts`` by part
  (a nested jaxpr's equations carry name stacks relative to their caller)."""
  for eqn in jaxpr.eqns:
    part = part_of(str(eqn.source_info.name_stack), inherited)
    counts[part] += 1
    for sub in _sub_jaxprs(eqn.params):
      count_equations(sub, counts, part)


def with_exits(run, scan: bool):
  """``run``'s step setup with its exit branches scanned by group or run one by one
  (``Supernet.scan_exits``; the state is the same)."""
  model = nnx.merge(run.setup.graphdef, run.state.params, run.state.arch, run.state.stats)
  model.scan_exits = scan
  return dataclasses.replace(run.setup, graphdef=split_model(model)[0])


def vmapped_exits(self, group, features, arch, train):
  """``Supernet._scanned_exits`` with ``jax.vmap`` in place of ``lax.scan`` (``--exits vmap``,
  an experiment kept here, not in the library: the stacked weights make each branch
  convolution one grouped convolution at the program's top level). Softmax mode only: in
  sampled mode a vmapped ``lax.switch`` with a per-exit index runs every candidate."""
  stack = lambda *leaves: jnp.stack(leaves)
  branches = [self.branches[j] for j in group]
  graphdef = nnx.graphdef(branches[0])
  stacked = (jax.tree.map(stack, *[nnx.state(b) for b in branches]),
             jnp.stack([supernet.scale_gradient(features[j], self.branch_grad_scale)
                        for j in group]),
             jnp.stack([arch.ops[j] for j in group]),
             jax.tree.map(stack, *[supernet._widths(arch, arch.branch_bits[j]) for j in group]))
  bits = self.space.branch_bits[group[0]]

  def one_exit(state, feature, ops, widths):
    branch = nnx.merge(graphdef, state)
    out = branch(feature, ops, bits, widths, train, single_path=arch.single_path)
    return out, nnx.state(branch, nnx.BatchStat)

  logits, stats = jax.vmap(one_exit)(*stacked)
  if train:
    for i, branch in enumerate(branches):
      nnx.update(branch, jax.tree.map(lambda leaf: leaf[i], stats))
  return [logits[i] for i in range(len(group))]


@contextlib.contextmanager
def exits_mode(mode: str):
  """Runs the block with the stacked exits scanned (the library's) or vmapped."""
  scanned = supernet.Supernet._scanned_exits
  if mode == "vmap":
    supernet.Supernet._scanned_exits = vmapped_exits
  try:
    yield
  finally:
    supernet.Supernet._scanned_exits = scanned


def measure(config, compile_too: bool, scan_exits: bool = False, steps: int = 0) -> dict:
  shape = (8, 8, 1) if config.data.name == "digits" else (32, 32, 3)
  data = synthetic_data(shape, 10, 4 * config.search.batch_size)
  run = pipeline.prepare_search(config, data=data)
  setup = with_exits(run, scan_exits)
  args = (run.state,) + pipeline.search_batches(run, config, 0) + (run.ctx,)
  t0 = time.perf_counter()
  traced = jit_search_step(setup).trace(*args)
  trace_s = time.perf_counter() - t0
  lowered = traced.lower()
  lower_s = time.perf_counter() - t0 - trace_s
  counts = collections.Counter()
  count_equations(traced.jaxpr.jaxpr, counts)
  text = lowered.as_text()
  out = dict(trace_s=trace_s, lower_s=lower_s, jaxpr_equations=sum(counts.values()),
             jaxpr_equations_by_part=dict(counts.most_common()),
             stablehlo_ops=sum(1 for line in text.splitlines() if re.search(r"= \"?stablehlo\.", line)),
             stablehlo_chars=len(text), candidate_exits=len(run.space.branches))
  if compile_too:
    t0 = time.perf_counter()
    compiled = lowered.compile()
    out["xla_s"] = time.perf_counter() - t0
    try:
      from jax._src import compilation_cache   # the bytes a persistent-cache entry holds
      backend = jax.devices()[0].client
      raw = backend.serialize_executable(compiled.runtime_executable())
      out["executable_mib"] = len(raw) / 2**20
      out["executable_mib_compressed"] = len(compilation_cache.compress_executable(raw)) / 2**20
    except Exception as err:   # not every backend serializes
      out["executable_error"] = str(err)
    if steps:   # seconds per step after one warm-up (the step donates its state: copies)
      state = jax.tree.map(jnp.copy, run.state)
      state, _ = compiled(state, *args[1:])
      jax.block_until_ready(state)
      t0 = time.perf_counter()
      for _ in range(steps):
        state, metrics = compiled(state, *args[1:])
      jax.block_until_ready((state, metrics))
      out["step_ms"] = 1e3 * (time.perf_counter() - t0) / steps
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--spaces", default="digits,cifar10_resnet20")
  parser.add_argument("--modes", default="softmax,sampled")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--compile", action="store_true", help="also compile (minutes on ResNet-20)")
  parser.add_argument("--exits", default="unrolled",
                      help="comma-separated: unrolled (each branch on its own: the library's "
                           "default), scan (same-structure exit branches as one lax.scan), "
                           "vmap (the same as one jax.vmap: an experiment, softmax mode)")
  parser.add_argument("--steps", type=int, default=0, help="with --compile: time this many steps")
  parser.add_argument("--out", default="")
  args, rest = parser.parse_known_args()
  overrides = [a for a in rest if a.startswith("--config.")]
  if len(overrides) != len(rest):
    parser.error(f"unknown arguments {[a for a in rest if a not in overrides]}")
  jax.config.update("jax_enable_compilation_cache", False)   # cold figures only
  results = dict(jax=jax.__version__, device=str(jax.devices()[0].device_kind),
                 command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]), spaces={})
  for space in filter(None, args.spaces.split(",")):
    results["spaces"][space] = {}
    for mode in filter(None, args.modes.split(",")):
      file, extra = SPACES[space]
      config = load_config_file(ROOT / "experiments/configs" / file)
      apply_overrides(config, extra + [f"--config.search.batch_size={args.batch}",
                                       f"--config.search.mixture_mode={mode}", *overrides])
      for exits in filter(None, args.exits.split(",")):
        with exits_mode(exits):
          r = measure(config, args.compile, exits in ("scan", "vmap"), args.steps)
        results["spaces"][space][f"{mode}/{exits}"] = r
        print(f"{space} {mode} exits={exits}: trace {r['trace_s']:.1f} s, lower {r['lower_s']:.1f} s"
              + (f", XLA {r['xla_s']:.1f} s" if "xla_s" in r else "")
              + (f", step {r['step_ms']:.0f} ms" if "step_ms" in r else "")
              + f"; {r['jaxpr_equations']} jaxpr equations {r['jaxpr_equations_by_part']}, "
                f"{r['stablehlo_ops']} StableHLO ops", flush=True)
      if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
  main()
