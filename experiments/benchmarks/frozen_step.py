"""The frozen-backbone search step of a run dir (exit branches on cached features): compile,
step time, and where the step's convolutions go.

Run:  python experiments/benchmarks/frozen_step.py --workdir RUN [--branch-conv lax,windows]
        [--steps 6] [--profile] [--out FILE]

RUN is a run dir whose config searches on a frozen backbone (e.g. a member of the CIFAR-10
campaign, ``~/dnas-ee-runs/cifar10_resnet20/sweep/*dnas_exits_only_s0*``; its feature cache
must exist). For each ``--branch-conv``, in a new process: the exit-branch candidates'
convolutions as ``dnas_ee.models.conv.conv2d`` (``lax``: lax convolutions with hand-written
gradients, a frozen search's before 87e2078) or as ``conv2d_windows`` (depthwise as
multiply-adds of windows, dense gradients as matrix products: a frozen search's now), the
step compiled without the persistent cache, then ``--steps`` steps timed
(median). ``--profile`` traces two steps and sums XLA:CPU's convolution thunks by the form
XLA gave them (feature groups, dilations, kernel reversal): the slow forms show there.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def measure(workdir: str, branch_conv: str, steps: int, profile: bool) -> dict:
  """One process's figures (called in a child: ``--child``)."""
  import jax
  import numpy as np
  from dnas_ee.models import conv, layers
  # A frozen search builds its branches with 'windows' (train.build.BRANCH_CONV); the 'lax'
  # arm puts conv2d, the branches' convolution before that choice, in its place.
  layers.CONV_IMPLS["windows"] = conv.conv2d_windows if branch_conv == "windows" else conv.conv2d
  jax.config.update("jax_enable_compilation_cache", False)
  from dnas_ee.stages.run_dir import load_run_config
  from dnas_ee.train.search import jit_search_step
  from dnas_ee.train.setup import prepare_search, search_batches
  config = load_run_config(workdir)
  run = prepare_search(config)
  step_fn = jit_search_step(run.setup)
  state = run.state
  t0 = time.perf_counter()
  state, _ = step_fn(state, *search_batches(run, config, 0), run.ctx)
  jax.block_until_ready(state)
  out = dict(branch_conv=branch_conv, compile_and_first_step_s=time.perf_counter() - t0)
  times = []
  for step in range(1, steps + 1):
    batches = search_batches(run, config, step)
    t0 = time.perf_counter()
    state, _ = step_fn(state, *batches, run.ctx)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - t0)
  out.update(step_ms=1e3 * float(np.median(times)), steps=steps)
  if profile:
    out["conv_ms_per_step_by_form"] = conv_profile(step_fn, state, run, config)
  return out


def conv_profile(step_fn, state, run, config) -> dict:
  """{the form XLA gave a convolution: ms per step}, two traced steps, summed over threads."""
  import collections
  import glob
  import gzip
  import re
  import tempfile
  import jax
  from dnas_ee.train.setup import search_batches
  args = search_batches(run, config, 100)
  forms = {}
  for line in step_fn.lower(state, *args, run.ctx).compile().as_text().splitlines():
    m = re.search(r"%(\S+) = \S+ convolution\((.*)", line)
    if m:
      tags = [t for t in ("feature_group_count", "lhs_dilate", "rhs_dilate", "rhs_reversal")
              if t in m.group(2)]
      labels = re.search(r"dim_labels=(\S+?),", m.group(2)).group(1)
      forms[m.group(1)] = " ".join(tags + [labels])
  trace_dir = tempfile.mkdtemp(prefix="dnas_ee_frozen_profile_")
  jax.profiler.start_trace(trace_dir)
  for step in (101, 102):
    state, _ = step_fn(state, *search_batches(run, config, step), run.ctx)
  jax.block_until_ready(state)
  jax.profiler.stop_trace()
  events = json.load(gzip.open(sorted(glob.glob(f"{trace_dir}/**/*.trace.json.gz",
                                                recursive=True))[-1]))
  events = events["traceEvents"] if isinstance(events, dict) else events
  totals = collections.Counter()
  for e in events:
    if e.get("ph") == "X" and e.get("name") in forms:
      totals[forms[e["name"]]] += e["dur"] / 2e3
  return dict(totals.most_common())


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--branch-conv", default="lax,windows")
  parser.add_argument("--steps", type=int, default=6)
  parser.add_argument("--profile", action="store_true")
  parser.add_argument("--out", default="")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    print(json.dumps(measure(args.workdir, args.branch_conv, args.steps, args.profile)))
    return
  results = dict(command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                 workdir=str(Path(args.workdir).expanduser()),
                 load_average_before=list(os.getloadavg()), runs=[])
  for branch_conv in filter(None, args.branch_conv.split(",")):
    child = [sys.executable, __file__, "--child", "--workdir", args.workdir, "--branch-conv",
             branch_conv, "--steps", str(args.steps)] + (["--profile"] if args.profile else [])
    out = subprocess.run(child, cwd=ROOT, check=True, capture_output=True, text=True)
    record = json.loads(out.stdout.strip().splitlines()[-1])
    results["runs"].append(record)
    print(json.dumps(record), flush=True)
  results["load_average_after"] = list(os.getloadavg())
  if args.out:
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
  main()
