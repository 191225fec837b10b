"""Benchmark: measured early-exit speed-up against the modelled one, on this machine.

Run:  python experiments/benchmarks/early_exit.py --workdir RUN [--samples 200] [--out FILE]

For a retrained run dir (thresholds from ``thresholds.json`` when calibrated, else
as ``dnas-ee evaluate`` takes them) it times, with ``EarlyExitExecutor``, the
early-exit network against the static backbone (same backbone and bit widths):

- latency: single-sample inference (batch 1, stopping at the first exit that
  fires), median over ``--samples`` test samples, networks interleaved sample by
  sample, best of ``--repeats`` per sample;
- throughput: batched inference at ``--batch-size`` (the survivors of each exit
  compacted into power-of-two buckets) over the test split tiled to at least
  ``--throughput-samples`` samples, best of ``--throughput-repeats`` passes.

Both in two compilation modes: ``exact`` (weights passed as arguments: the
programs ``dnas-ee evaluate`` verifies against the reference, bit for bit) and
``baked`` (weights compiled in as constants, as a deployment would; XLA folds the
weight quantization, so the logits may differ in the last bits).

Next to them: the modelled reductions of the expected cost per test sample
(MACs; LUT latency, energy and EDP where the run has an accelerator), and the
ratio measured latency reduction / modelled MAC reduction (goal >= 0.8).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dnas_ee import pipeline  # noqa: E402
from dnas_ee.data import load_dataset  # noqa: E402
from dnas_ee.stages.evaluate import _device, check_run_files, evaluate_network  # noqa: E402
from dnas_ee.exits.executor import (  # noqa: E402
    EarlyExitExecutor, measure_latencies, measure_throughput)

MODES = dict(exact=False, baked=True)


def _executor(net, thresholds, measure, *, batch_size, bake):
  return EarlyExitExecutor.from_state(
      net.space, net.setup.graphdef, net.state.params, net.setup.arch, net.state.stats,
      thresholds, measure, batch_size=batch_size, min_bucket=1, bake_weights=bake)


def benchmark(workdir, *, samples: int = 200, repeats: int = 3, batch_size: int = 256,
              throughput_samples: int = 4096, throughput_repeats: int = 5,
              modes=("exact", "baked")) -> dict:
  """Runs the benchmark on the run dir; returns the results as a dict."""
  workdir = Path(workdir)
  config = pipeline.load_run_config(workdir)
  check_run_files(workdir, config)
  data = load_dataset(config.data)
  images, labels = data.test.images, data.test.labels
  ee = evaluate_network(config, workdir, "early_exit", images, labels)
  static = evaluate_network(config, workdir, "static", images, labels)
  e, s = ee.entry, static.entry
  modelled = {m: 1 - e[m] / s[m] for m in ("macs", "latency_s", "energy_j", "edp")
              if m in e and s[m]}
  measure = config.exits.confidence
  reps = int(np.ceil(throughput_samples / len(images)))
  tiled = np.concatenate([images] * max(1, reps))
  results = dict(workdir=str(workdir), device=_device(), dataset=config.data.name,
                 test_samples=int(len(images)), thresholds=e["thresholds"],
                 threshold_source=e["threshold_source"], exit_rates=e["exit_rates"],
                 accuracy=dict(static=s["accuracy"], early_exit=e["accuracy"]),
                 modelled_reduction=modelled, latency_samples=int(min(samples, len(images))),
                 throughput_samples=int(len(tiled)), batch_size=int(batch_size), modes={})
  for mode in modes:
    bake = MODES[mode]
    t0 = time.perf_counter()
    single = {"static": _executor(static, static.thresholds, measure, batch_size=1, bake=bake),
              "early_exit": _executor(ee, ee.thresholds, measure, batch_size=1, bake=bake)}
    lat = measure_latencies(single, images[:samples], warmup=10, repeats=repeats)
    batched = {"static": _executor(static, static.thresholds, measure, batch_size=batch_size,
                                   bake=bake),
               "early_exit": _executor(ee, ee.thresholds, measure, batch_size=batch_size,
                                       bake=bake)}
    thr = {name: measure_throughput(ex, tiled, repeats=throughput_repeats)
           for name, ex in batched.items()}
    lat_red = 1 - lat["early_exit"].median_s / lat["static"].median_s
    thr_red = 1 - thr["static"] / thr["early_exit"]       # time per sample, batched
    results["modes"][mode] = dict(
        latency_s={k: v.to_dict() for k, v in lat.items()}, throughput_per_s=thr,
        latency_reduction=lat_red, throughput_time_reduction=thr_red,
        latency_ratio_to_macs=lat_red / modelled["macs"] if modelled["macs"] > 0 else None,
        throughput_ratio_to_macs=thr_red / modelled["macs"] if modelled["macs"] > 0 else None,
        compiled_segments={k: sum(v.trace_counts) for k, v in batched.items()},
        seconds=time.perf_counter() - t0)
  return results


def table(results: dict) -> str:
  """The printed table."""
  lines = [f"run {results['workdir']} ({results['dataset']}, {results['test_samples']} test "
           f"samples) on {results['device']}",
           f"thresholds {results['thresholds']} ({results['threshold_source']}); exit rates "
           + " / ".join(f"{r:.2f}" for r in results["exit_rates"])
           + f"; accuracy static {100 * results['accuracy']['static']:.2f}%, early-exit "
             f"{100 * results['accuracy']['early_exit']:.2f}%", "",
           "modelled reduction of the expected cost per sample vs the static backbone: "
           + ", ".join(f"{k} {100 * v:+.1f}%" for k, v in results["modelled_reduction"].items()),
           "",
           f"{'mode':<7}{'network':<12}{'latency b=1 (median)':>22}{'throughput b=' + str(results['batch_size']):>20}",
           ]
  for mode, r in results["modes"].items():
    for net in ("static", "early_exit"):
      lines.append(f"{mode:<7}{net:<12}{1e6 * r['latency_s'][net]['median_s']:>19.1f} us"
                   f"{r['throughput_per_s'][net]:>16.0f} /s")
  lines += ["", f"{'mode':<7}{'measured latency red.':>22}{'ratio to MACs':>15}"
                f"{'batched time red.':>20}{'ratio to MACs':>15}"]
  fmt = lambda v: "-" if v is None else f"{v:.2f}"
  for mode, r in results["modes"].items():
    lines.append(f"{mode:<7}{100 * r['latency_reduction']:>21.1f}%"
                 f"{fmt(r['latency_ratio_to_macs']):>15}{100 * r['throughput_time_reduction']:>19.1f}%"
                 f"{fmt(r['throughput_ratio_to_macs']):>15}")
  lines.append(f"(ratio = measured reduction / modelled MAC reduction "
               f"{100 * results['modelled_reduction']['macs']:+.1f}%; goal >= 0.8)")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True, help="a retrained (ideally calibrated) run dir")
  parser.add_argument("--samples", type=int, default=200, help="test samples timed at batch 1")
  parser.add_argument("--repeats", type=int, default=3, help="timings per sample (min kept)")
  parser.add_argument("--batch-size", type=int, default=256)
  parser.add_argument("--throughput-samples", type=int, default=4096)
  parser.add_argument("--throughput-repeats", type=int, default=5)
  parser.add_argument("--modes", default="exact,baked", help="exact, baked or both (comma)")
  parser.add_argument("--out", default="", help="also write the results as JSON here")
  args = parser.parse_args(argv)
  modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
  unknown = set(modes) - set(MODES)
  if unknown:
    parser.error(f"unknown --modes {sorted(unknown)}; use {sorted(MODES)}")
  try:
    results = benchmark(args.workdir, samples=args.samples, repeats=args.repeats,
                        batch_size=args.batch_size, throughput_samples=args.throughput_samples,
                        throughput_repeats=args.throughput_repeats, modes=modes)
  except (FileNotFoundError, ValueError) as err:
    print(f"early_exit benchmark: error: {err}", file=sys.stderr)
    return 2
  print(table(results))
  if args.out:
    Path(args.out).write_text(json.dumps(results, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
