"""Where a search step's time goes: a perfetto trace of XLA:CPU's thunks, grouped by op kind.

Run:  python experiments/benchmarks/search_step_profile.py --space cifar10_resnet20 \
        --mode sampled [--out FILE]

Builds the search step as ``search_step.py`` does (synthetic data, batch 64, priced in
MACs, no warm-up), runs 4 steps, traces 2 with ``jax.profiler`` and sums each event's
duration by name with its numeric suffix stripped (``ynn_fusion.360`` -> ``ynn_fusion``).
Events nest (a ``cond`` holds its branch's ops) and two threads overlap, so the groups
do not add up to the step: they rank, they do not partition.
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from search_step import configs, synthetic_data  # noqa: E402
from dnas_ee import pipeline  # noqa: E402
from dnas_ee.train.search import jit_search_step  # noqa: E402

_HOST = ("$", "Pjit", "Thunk", "Execute", "Parse")   # Python frames and executor bookkeeping


def grouped_ms_per_step(totals_us: dict, steps: int) -> dict:
  """{op kind: ms per step}, largest first, host-side events left out."""
  groups = collections.Counter()
  for name, us in totals_us.items():
    if not any(tag in name for tag in _HOST):
      groups[re.sub(r"[.\d]+$", "", name)] += us / 1e3 / steps
  return dict(groups.most_common())


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--space", default="cifar10_resnet20")
  parser.add_argument("--mode", default="sampled")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  _, config = next(configs([args.space], 64, [
      "--config.hw.accelerator=", "--config.hw.objective=macs",
      f"--config.search.mixture_mode={args.mode}", "--config.search.warmup_steps=0"]))
  shape = (8, 8, 1) if config.data.name == "digits" else (32, 32, 3)
  run = pipeline.prepare_search(config, data=synthetic_data(shape, 10, 256))
  step = jit_search_step(run.setup)
  batches = lambda i: pipeline.search_batches(run, config, i) + (run.ctx,)
  state, metrics = step(run.state, *batches(0))
  for i in range(3):
    state, metrics = step(state, *batches(i + 1))
  jax.block_until_ready(metrics)
  t0 = time.perf_counter()
  state, metrics = step(state, *batches(4))
  jax.block_until_ready(metrics)
  step_ms = 1e3 * (time.perf_counter() - t0)
  trace_dir = tempfile.mkdtemp(prefix="dnas_ee_profile_")
  jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
  for i in range(2):
    state, metrics = step(state, *batches(i + 5))
  jax.block_until_ready(metrics)
  jax.profiler.stop_trace()
  events = json.load(gzip.open(sorted(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True))[-1]))
  events = events["traceEvents"] if isinstance(events, dict) else events
  totals = collections.Counter()
  for e in events:
    if e.get("ph") == "X" and "dur" in e:
      totals[e["name"]] += e["dur"]
  result = dict(command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]), space=args.space,
                mode=args.mode, step_ms_untraced=step_ms,
                ms_per_step_by_op_kind=grouped_ms_per_step(totals, 2))
  print(json.dumps(result, indent=2)[:3000])
  if args.out:
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
