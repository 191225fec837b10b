"""``dnas-ee`` command line: thin wrappers around ``dnas_ee.pipeline`` and friends.

    dnas-ee run --config experiments/configs/digits.py --workdir runs/digits [--config.a.b=v ...]
    dnas-ee search|derive|retrain|evaluate ...   (one stage; later stages read the work dir)
    dnas-ee calibrate --workdir runs/X --mode accuracy_floor --max-drop 0.5
    dnas-ee sweep --sweep experiments/sweeps/smoke.py --workdir runs/smoke; dnas-ee table --workdir runs/smoke
    dnas-ee lut build|show --config ... --accelerator edge_tpu_like
    dnas-ee lut measure --config ... --output runs/cpu_lut.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CONFIG_HELP = """\
config files and overrides:
  --config PATH[:ARG]   a Python file whose get_config(ARG) returns the config
                        (experiments/configs/*.py); ':ARG' is passed to get_config as a
                        string, e.g. --config experiments/configs/digits_hw.py:eyeriss_like
                        (files whose get_config takes no argument take no ':ARG')
  --config.KEY=VALUE    overrides one key of the config, any number of times, e.g.
                        --config.search.steps=300 --config.space.bits="(4, 8)"
                        --config.hw.accelerator=edge_tpu_like; VALUE is read as a Python
                        literal (quote tuples for the shell), a mistyped KEY is an error
                        naming the nearest valid key
  stages after search read the work dir's config.json when --config is not given
"""

STAGE_COMMANDS = ("search", "derive", "retrain", "evaluate", "run")


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="dnas-ee", description=__doc__.splitlines()[0],
                                   epilog=CONFIG_HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
  sub = parser.add_subparsers(dest="command", required=True)
  for name in STAGE_COMMANDS:
    p = sub.add_parser(name, help=f"the {name} stage" if name != "run" else
                       "all five stages (search, derive, retrain, calibrate, evaluate)")
    p.add_argument("--config", help="experiments/configs/X.py[:arg]; defaults to the work dir's "
                                    "config.json for stages after search")
    p.add_argument("--workdir", required=True)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--restart", action="store_true",
                   help="the work dir holds another config: delete the stages it makes stale")
  sw = sub.add_parser("sweep", help="run every member of a sweep (experiments/sweeps/*.py)")
  sw.add_argument("--sweep", required=True)
  sw.add_argument("--shared-dir", default="",
                  help="where trainings shared by members live (default: WORKDIR/shared); "
                       "give several sweeps one to share them across sweeps")
  sw.add_argument("--workdir", required=True)
  sw.add_argument("--no-progress", action="store_true", help="no progress bar")
  tb = sub.add_parser("table", help="aggregate a sweep's summaries: table.md, table.csv, pareto.png")
  tb.add_argument("--workdir", required=True)
  tb.add_argument("--sweep", default="", help="the sweep file (default: the work dir's sweep.json)")
  tb.add_argument("--cost", default="", help="cost axis of the Pareto plot (default: the sweep's)")
  tb.add_argument("--out", default="",
                  help="also copy the table files and each member's summary, genotype, config, "
                       "thresholds and search trajectory to this folder (results to commit)")
  cal = sub.add_parser("calibrate", help="calibrate per-exit thresholds of a retrained run")
  cal.add_argument("--workdir", required=True)
  cal.add_argument("--mode", choices=("accuracy_floor", "budget"), default="accuracy_floor")
  cal.add_argument("--max-drop", type=float, default=0.5,
                   help="accuracy_floor: points below the reference's calib accuracy")
  cal.add_argument("--reference", choices=("static", "final_exit"), default="static",
                   help="accuracy_floor: the static network trained alone (default, the honest "
                        "baseline) or the early-exit network's own final exit")
  cal.add_argument("--budget", type=float, default=0.5, help="budget: cost as a fraction of the static backbone")
  ex = sub.add_parser("export", help="the early-exit network as integer LiteRT segments "
                                     "(needs pip install 'dnas-ee[export]')")
  ex.add_argument("--workdir", required=True)
  ex.add_argument("--out", default="", help="export dir (default: WORKDIR/export)")
  inf = sub.add_parser("infer", help="run an export's LiteRT cascade (default: the run's test "
                                     "split, writing infer.json)")
  inf.add_argument("--export", required=True, help="the export dir")
  inf.add_argument("--data", default="",
                   help="an .npz with 'images' (normalized NHWC) and optional 'labels'")
  inf.add_argument("--latency-samples", type=int, default=200)
  lut = sub.add_parser("lut", help="accelerator lookup tables")
  lut_sub = lut.add_subparsers(dest="lut_command", required=True)
  b = lut_sub.add_parser("build")
  b.add_argument("--config", required=True)
  b.add_argument("--accelerator", required=True)
  b.add_argument("--model", default="auto", choices=("auto", "zigzag", "analytic"))
  b.add_argument("--workers", type=int, default=0)
  b.add_argument("--output", default="")
  b.add_argument("--residency", default="onchip", choices=("onchip", "dram"))
  s = lut_sub.add_parser("show")
  s.add_argument("path", nargs="?", default="")
  s.add_argument("--config", default="")
  s.add_argument("--accelerator", default="")
  m = lut_sub.add_parser("measure", help="time every op of the config's space on this JAX device")
  m.add_argument("--config", required=True)
  m.add_argument("--output", required=True)
  m.add_argument("--repeats", type=int, default=20)
  m.add_argument("--warmup", type=int, default=3)
  m.add_argument("--batch-size", type=int, default=1)
  for command in list(sub.choices.values()) + list(lut_sub.choices.values()):
    command.epilog = CONFIG_HELP
    command.formatter_class = argparse.RawDescriptionHelpFormatter
  return parser


def _version() -> str:
  """The installed distribution's version (the source's when run from a checkout)."""
  from importlib.metadata import PackageNotFoundError, version
  try:
    return version("dnas-ee")
  except PackageNotFoundError:
    from dnas_ee import __version__
    return __version__


def _lut_space(config):
  """The search space of a config at its data set's shape (the data is not loaded)."""
  from dnas_ee.data.shapes import dataset_shape
  from dnas_ee.train.build import build_space
  return build_space(config, *dataset_shape(config.data))


def _config(args, overrides):
  from dnas_ee import config as cfg
  if args.config:
    config = cfg.load_config_file(args.config)
  else:
    path = Path(args.workdir) / "config.json"
    if not path.exists():
      raise cfg.ConfigError(f"--config is required: {path} does not exist yet")
    config = cfg.config_from_json(path)
  cfg.apply_overrides(config, overrides)
  cfg.check_keys(config)
  return config


def _print_summary(summary: dict) -> None:
  from dnas_ee.report import summary_table
  print(summary_table(summary))


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  overrides = [a for a in argv if a.startswith("--config.")]
  args = _parser().parse_args([a for a in argv if not a.startswith("--config.")])
  from dnas_ee import pipeline
  from dnas_ee.config import ConfigError
  from dnas_ee.train.compile_cache import enable_compilation_cache
  enable_compilation_cache()   # ~/.cache/dnas_ee/jax; DNAS_EE_COMPILATION_CACHE=off disables it
  try:
    if args.command in STAGE_COMMANDS:
      config = _config(args, overrides)
      progress = not args.no_progress
      from dnas_ee.stages import run_config as run_dirs
      if args.restart:
        cleared = run_dirs.restart(config, args.workdir)
        print(f"restart: cleared {', '.join(cleared) or 'nothing'} in {args.workdir}")
      else:
        run_dirs.check_same_config(config, args.workdir)
      if args.command == "run":
        _print_summary(pipeline.run(config, args.workdir, progress=progress))
      elif args.command == "search":
        pipeline.search(config, args.workdir, progress=progress)
        print(f"search done: {Path(args.workdir) / 'search_arch.json'}")
      elif args.command == "derive":
        genotype = pipeline.derive(config, args.workdir)
        print(json.dumps(genotype.to_json()["exits"], indent=1))
      elif args.command == "retrain":
        pipeline.retrain(config, args.workdir, progress=progress)
      else:
        _print_summary(pipeline.evaluate(config, args.workdir))
    elif args.command == "calibrate":
      from dnas_ee.stages.calibrate import calibrate_run
      from dnas_ee.stages.run_config import check_calibration_target
      check_calibration_target(args.mode, args.max_drop, args.budget)
      calibrate_run(args.workdir, mode=args.mode, max_drop=args.max_drop, budget=args.budget,
                    reference=args.reference)
      if (Path(args.workdir) / "summary.json").exists():
        print(f"note: {Path(args.workdir) / 'summary.json'} predates these thresholds: run "
              f"`dnas-ee evaluate --workdir {args.workdir}` to refresh it")
    elif args.command == "sweep":
      from dnas_ee.sweep import run_sweep
      run_sweep(args.sweep, args.workdir, progress=not args.no_progress,
                shared_dir=args.shared_dir or None)
    elif args.command == "table":
      from dnas_ee.sweep import write_table
      print(write_table(args.workdir, sweep=args.sweep or None, cost=args.cost or None))
      if args.out:
        from dnas_ee.sweep.table import export_results
        print(f"{export_results(args.workdir, args.out)} finished members' files in {args.out}")
    elif args.command in ("export", "infer"):
      _export_command(args)
    elif args.command == "lut":
      from dnas_ee.hw.cli import lut_command
      lut_command(args, overrides, _lut_space)
  except (ConfigError, ValueError, FileNotFoundError, ImportError) as err:
    print(f"dnas-ee: error: {err}", file=sys.stderr)
    return 2
  return 0


def _export_command(args) -> None:
  from dnas_ee.stages import export
  if args.command == "export":
    manifest = export.export_run(args.workdir, args.out or None)
    out = Path(args.out or Path(args.workdir) / "export")
    print(f"exported {len(manifest['segments'])} segments to {out}")
    return
  kwargs = {}
  if args.data:
    import numpy as np
    data = np.load(args.data)
    kwargs = dict(images=data["images"], labels=data["labels"] if "labels" in data else None)
  print(json.dumps(export.infer(args.export, latency_samples=args.latency_samples, **kwargs),
                   indent=1))


if __name__ == "__main__":
  sys.exit(main())
