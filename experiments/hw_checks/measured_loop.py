"""Modelled vs measured early-exit speed-up on this machine, from a LUT measured here.

    python experiments/hw_checks/measured_loop.py --run RUN --lut LUT \
        [--benchmark FILE | --paths N] [--out FILE]

``RUN`` is an evaluated run dir (``config.json``, ``genotype.json``, ``summary.json``);
``LUT`` a ``dnas-ee lut measure`` LUT of the run's search space on this device.
The script prices the derived early-exit network and its static backbone with the
measured LUT (``dnas_ee.train.build.network_costs``, the same account as
``dnas-ee evaluate``), at the run's thresholds and test exit rates
(``summary.json``), and sets the modelled speed-up (static / expected early-exit
latency) next to the measured one: the executor's single-sample median latencies,
from ``--benchmark`` (``experiments/benchmarks/early_exit.py --out``, mode
``exact``) when given; with ``--paths N``, measured here and now without the
trained weights (a run dir whose checkpoints are gone): the executor's median
single-sample latency of every path (leaving at exit j: earlier exits computed and
rejected, exit j forced to fire) over N random images, weighted by the run's exit
rates, and of the static backbone (the weights' values change no shape, so no
time); else from ``summary.json`` (``dnas-ee evaluate``'s measurement). The
speed-up the run's accelerator LUT modelled is printed too.

Prints one line per figure and writes them as JSON with ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]   # the repository
sys.path.insert(0, str(ROOT))

from dnas_ee import pipeline  # noqa: E402
from dnas_ee.space.genotype import Genotype  # noqa: E402
from dnas_ee.stages.run_dir import network_space  # noqa: E402
from dnas_ee.train.build import network_costs  # noqa: E402


def _thresholds(values) -> np.ndarray:
  return np.array([np.inf if v in ("inf", float("inf")) else float(v) for v in values])


def modelled(run: Path, lut: Path) -> dict:
  """Latencies of the run's networks priced with ``lut`` (seconds)."""
  config = pipeline.load_run_config(run)
  summary = json.loads((run / "summary.json").read_text())
  accelerator = json.loads(lut.read_text())["accelerator"]
  with config.unlocked():
    config.hw.accelerator, config.hw.lut = accelerator, str(lut)
  genotype = Genotype.load(run / "genotype.json")
  ee = network_costs(config, network_space(genotype, "early_exit"))
  static = network_costs(config, network_space(genotype, "static"))
  rates = np.asarray(summary["early_exit"]["exit_rates"])
  thresholds = _thresholds(summary["early_exit"]["thresholds"])
  per_exit = ee.column(ee.deployed(thresholds), "latency_s")
  static_s = float(static.column(static.backbone, "latency_s"))
  expected = float(rates @ per_exit)
  return dict(accelerator=accelerator, exit_rates=rates.tolist(),
              thresholds=summary["early_exit"]["thresholds"], per_exit_s=per_exit.tolist(),
              static_s=static_s, early_exit_s=expected, speedup=static_s / expected,
              run_accelerator=config_accelerator(run),
              run_accelerator_speedup=summary["static"]["latency_s"]
              / summary["early_exit"]["latency_s"])


def config_accelerator(run: Path) -> str:
  return json.loads((run / "config.json").read_text())["hw"]["accelerator"]


def measured(run: Path, benchmark: Path | None) -> dict:
  """The executor's single-sample median latencies (seconds) and where they come from."""
  if benchmark:
    mode = json.loads(benchmark.read_text())["modes"]["exact"]["latency_s"]
    static_s, ee_s = mode["static"]["median_s"], mode["early_exit"]["median_s"]
    source = f"{benchmark} (experiments/benchmarks/early_exit.py, mode exact)"
  else:
    m = json.loads((run / "summary.json").read_text())["measured"]
    static_s, ee_s = m["static"]["median_s"], m["early_exit"]["median_s"]
    source = f"{run / 'summary.json'} (dnas-ee evaluate, {m['samples']} samples)"
  return dict(static_s=static_s, early_exit_s=ee_s, speedup=static_s / ee_s, source=source)


# A threshold no confidence reaches (max_prob and margin <= 1, neg_entropy <= 0): the exit
# is computed and rejected; +inf would prune it (the executor skips the branch).
NEVER = 1e9


def path_thresholds(thresholds: np.ndarray, j: int) -> np.ndarray:
  """Thresholds that send every sample out at exit ``j`` (``len(thresholds)``: the final one)."""
  tau = np.where(np.isinf(thresholds) & (thresholds > 0), np.inf, NEVER)
  if j < len(tau):
    tau[j] = -np.inf
  return tau


def measured_paths(run: Path, samples: int, seed: int = 0) -> dict:
  """Executor latencies of every exit path and of the static backbone, untrained weights."""
  from dnas_ee.exits.executor import EarlyExitExecutor, measure_latencies
  from dnas_ee.stages.run_dir import train_setup
  config = pipeline.load_run_config(run)
  summary = json.loads((run / "summary.json").read_text())
  rates = np.asarray(summary["early_exit"]["exit_rates"])
  thresholds = _thresholds(summary["early_exit"]["thresholds"])
  genotype = Genotype.load(run / "genotype.json")
  executors, weights = {}, {}
  for which in ("static", "early_exit"):
    space = network_space(genotype, which)
    setup, state = train_setup(config, space, config.seed)
    base = EarlyExitExecutor.from_state(space, setup.graphdef, state.params, setup.arch,
                                        state.stats, np.full(len(space.branches), np.inf),
                                        config.exits.confidence, batch_size=1, min_bucket=1)
    if which == "static":
      executors["static"] = base
      continue
    for j, rate in enumerate(rates):
      if rate > 0:
        executors[f"exit_{j}"] = base.with_thresholds(path_thresholds(thresholds, j))
        weights[f"exit_{j}"] = float(rate)
  images = np.random.default_rng(seed).standard_normal(
      (samples,) + tuple(genotype.backbone.image_shape)).astype(np.float32)
  lat = measure_latencies(executors, images, warmup=10, repeats=3)
  for name in weights:   # every timed sample left where it was sent
    j = int(name.split("_")[1])
    if lat[name].exit_rates[j] != 1.0:
      raise RuntimeError(f"path {name}: exit rates {lat[name].exit_rates}, expected all at {j}")
  paths = {name: float(lat[name].median_s) for name in executors}
  early = sum(w * paths[name] for name, w in weights.items()) / sum(weights.values())
  return dict(static_s=paths["static"], early_exit_s=early, speedup=paths["static"] / early,
              paths_s=paths, source=f"executor per path, untrained weights, {samples} random "
                                    "images, median of the best of 3 per image")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--run", required=True, type=Path)
  parser.add_argument("--lut", required=True, type=Path)
  parser.add_argument("--benchmark", type=Path, default=None)
  parser.add_argument("--paths", type=int, default=0,
                      help="measure every exit path now, over this many random images")
  parser.add_argument("--out", type=Path, default=None)
  args = parser.parse_args()
  mod = modelled(args.run, args.lut)
  meas = (measured_paths(args.run, args.paths) if args.paths
          else measured(args.run, args.benchmark))
  result = dict(run=str(args.run), lut=str(args.lut), modelled=mod, measured=meas,
                speedup_ratio=meas["speedup"] / mod["speedup"],
                reduction_ratio=(1 - 1 / meas["speedup"]) / (1 - 1 / mod["speedup"]),
                static_measured_over_lut=meas["static_s"] / mod["static_s"])
  print(f"run {args.run}: exit rates {np.round(mod['exit_rates'], 4).tolist()}, thresholds "
        f"{mod['thresholds']}")
  print(f"modelled ({mod['accelerator']} LUT {args.lut}): static {1e6 * mod['static_s']:.1f} us, "
        f"early-exit {1e6 * mod['early_exit_s']:.1f} us, speed-up {mod['speedup']:.3f}")
  print(f"modelled ({mod['run_accelerator']} LUT of the run): speed-up "
        f"{mod['run_accelerator_speedup']:.3f}")
  print(f"measured ({meas['source']}): static {1e6 * meas['static_s']:.1f} us, early-exit "
        f"{1e6 * meas['early_exit_s']:.1f} us, speed-up {meas['speedup']:.3f}")
  print(f"measured/modelled speed-up {result['speedup_ratio']:.3f}; latency reduction "
        f"measured/modelled {result['reduction_ratio']:.3f}; static measured/LUT sum "
        f"{result['static_measured_over_lut']:.3f}")
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
  main()
