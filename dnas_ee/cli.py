"""The ``dnas-ee`` command line: parses flags and calls the library (``dnas_ee.pipeline``,
``dnas_ee.sweep``, ``dnas_ee.hw``), which tests and scripts call too.

    dnas-ee run --config experiments/configs/digits.py --workdir runs/digits [--config.a.b=v ...]
    dnas-ee search|derive|retrain|evaluate ...   (one stage; later stages read the work dir)
    dnas-ee calibrate --workdir runs/X --mode accuracy_floor --max-drop 0.5
    dnas-ee sweep --sweep experiments/sweeps/smoke.py --workdir runs/smoke; dnas-ee table --workdir runs/smoke
    dnas-ee sweep ... --executor ray --address auto   (members as Ray tasks: docs/cluster.md)
    dnas-ee lut build|show --config ... --accelerator edge_tpu_like
    dnas-ee lut measure --config ... --output runs/cpu_lut.json
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
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

DESCRIPTION = """\
dnas-ee searches early-exit networks for a hardware target. One supernet holds every
candidate (where the exits go, what each exit branch computes, the bit width of every
layer); it trains its weights and its architecture together, penalizing the expected
latency, energy or EDP of the early-exit network on an accelerator (read from a lookup
table). The discrete network it derives is then retrained beside the static backbone,
its exit thresholds are calibrated, and both are evaluated for accuracy and cost.

Each command works in a run dir (--workdir): it writes its results there and resumes
from what the dir already holds. Start with:
  dnas-ee run --config experiments/configs/digits.py --workdir runs/digits

commands (dnas-ee COMMAND --help for one):
"""

STAGE_COMMANDS = ("run", "search", "derive", "retrain", "evaluate")
STAGE_HELP = {
    "run": "all five stages in order (search, derive, retrain, calibrate, evaluate); "
           "the summary table at the end",
    "search": "train the supernet's weights and architecture -> search_arch.json",
    "derive": "the discrete early-exit network of the run's method -> genotype.json",
    "retrain": "train the derived early-exit network and the static backbone",
    "evaluate": "test accuracy, exit rates and cost of both networks -> summary.json, report.md",
}


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="dnas-ee", usage="dnas-ee [-h] [--version] COMMAND ...",
                                   epilog=CONFIG_HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
  sub = _commands(parser, "command")
  for name in ("run", "search", "derive", "retrain"):
    _stage_command_parser(sub, name)
  cal = _command(sub, "calibrate", "choose the exit thresholds of a retrained run on its "
                                   "calib split -> thresholds.json")
  cal.add_argument("--workdir", required=True)
  cal.add_argument("--mode", choices=("accuracy_floor", "budget"), default="accuracy_floor")
  cal.add_argument("--max-drop", type=float, default=0.5,
                   help="accuracy_floor: points below the reference's calib accuracy")
  cal.add_argument("--reference", choices=("static", "final_exit"), default="static",
                   help="accuracy_floor: the static network trained alone (default, the honest "
                        "baseline) or the early-exit network's own final exit")
  cal.add_argument("--budget", type=float, default=0.5, help="budget: cost as a fraction of the static backbone")
  _stage_command_parser(sub, "evaluate")
  sw = _command(sub, "sweep", "run every member of a sweep file (experiments/sweeps/*.py), "
                             "resuming the finished and interrupted ones")
  sw.add_argument("--sweep", required=True)
  sw.add_argument("--shared-dir", default="",
                  help="where trainings shared by members live (default: WORKDIR/shared); "
                       "give several sweeps one to share them across sweeps")
  sw.add_argument("--workdir", required=True)
  sw.add_argument("--no-progress", action="store_true", help="no progress bar")
  sw.add_argument("--executor", choices=("local", "ray"), default="local",
                  help="local: members one after another in this process (default); ray: "
                       "members as Ray tasks on a Ray cluster (pip install 'dnas-ee[cluster]'; "
                       "docs/cluster.md)")
  sw.add_argument("--address", default=None,
                  help="ray: the cluster to join ('auto': the one `ray start` began here; "
                       "default: $RAY_ADDRESS, else a Ray instance started for the sweep)")
  sw.add_argument("--cpus-per-member", type=float, default=None,
                  help="ray: CPUs each member's task asks for (default: the sweep file's "
                       "resources, else 1)")
  sw.add_argument("--gpus-per-member", type=float, default=None,
                  help="ray: GPUs each member's task asks for; a fraction shares a GPU "
                       "(default: the sweep file's resources, else 0)")
  tb = _command(sub, "table", "aggregate a sweep's summaries: table.md, table.csv, pareto.png")
  tb.add_argument("--workdir", required=True)
  tb.add_argument("--sweep", default="", help="the sweep file (default: the work dir's sweep.json)")
  tb.add_argument("--cost", default="", help="cost axis of the Pareto plot (default: the sweep's)")
  tb.add_argument("--out", default="",
                  help="also copy the table files and each member's summary, genotype, config, "
                       "thresholds and search trajectory to this folder (results to commit)")
  ex = _command(sub, "export", "the early-exit network as integer LiteRT segments "
                              "(needs pip install 'dnas-ee[export]')")
  ex.add_argument("--workdir", required=True)
  ex.add_argument("--out", default="", help="export dir (default: WORKDIR/export)")
  inf = _command(sub, "infer", "run an export's LiteRT cascade (default: the run's test "
                              "split, writing infer.json)")
  inf.add_argument("--export", required=True, help="the export dir")
  inf.add_argument("--data", default="",
                   help="an .npz with 'images' (normalized NHWC) and optional 'labels'")
  inf.add_argument("--latency-samples", type=int, default=200)
  lut = _command(sub, "lut", "accelerator lookup tables (LUTs): build, show, measure")
  lut.usage = "dnas-ee lut [-h] COMMAND ..."
  lut_sub = _commands(lut, "lut_command")
  b = _command(lut_sub, "build", "cost every op of a config's search space on an accelerator "
                                 "(ZigZag or the analytic model) into its LUT")
  b.add_argument("--config", required=True)
  b.add_argument("--accelerator", required=True)
  b.add_argument("--model", default="auto", choices=("auto", "zigzag", "analytic"))
  b.add_argument("--workers", type=int, default=0)
  b.add_argument("--output", default="")
  b.add_argument("--residency", default="onchip", choices=("onchip", "dram"))
  s = _command(lut_sub, "show", "print a LUT as a table; with --config, whether it covers "
                                "that config's space")
  s.add_argument("path", nargs="?", default="")
  s.add_argument("--config", default="")
  s.add_argument("--accelerator", default="")
  m = _command(lut_sub, "measure", "time every op of the config's space on this JAX device "
                                   "into a LUT")
  m.add_argument("--config", required=True)
  m.add_argument("--output", required=True)
  m.add_argument("--repeats", type=int, default=20)
  m.add_argument("--warmup", type=int, default=3)
  m.add_argument("--batch-size", type=int, default=1)
  for command in list(sub.choices.values()) + list(lut_sub.choices.values()):
    command.epilog = CONFIG_HELP
    command.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.description = DESCRIPTION + _command_list(sub)
  lut.description += "\n\ncommands (dnas-ee lut COMMAND --help for one):\n" + _command_list(lut_sub)
  return parser


def _commands(parser, dest: str):
  """The subcommands of ``parser``, listed in its description by ``_command_list``."""
  return parser.add_subparsers(dest=dest, required=True, metavar="COMMAND", help=argparse.SUPPRESS,
                               prog=parser.prog)


def _command(sub, name: str, help: str) -> argparse.ArgumentParser:
  """A subcommand; its one line ``help`` heads its own --help and its parent's list."""
  return sub.add_parser(name, description=textwrap.fill(help, 88, break_on_hyphens=False))


def _command_list(sub) -> str:
  """``  NAME  what it does`` for each subcommand, in the order they were added."""
  width = max(map(len, sub.choices)) + 2
  return "\n".join(textwrap.fill(p.description, 92, initial_indent=f"  {name:<{width}}",
                                 subsequent_indent=" " * (width + 2), break_on_hyphens=False)
                   for name, p in sub.choices.items())


def _stage_command_parser(sub, name: str) -> None:
  p = _command(sub, name, STAGE_HELP[name])
  p.add_argument("--config", help="experiments/configs/X.py[:arg]; defaults to the work dir's "
                                  "config.json for stages after search")
  p.add_argument("--workdir", required=True)
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.add_argument("--restart", action="store_true",
                 help="the work dir holds another config: delete the stages it makes stale")


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


def _stage_command(command: str, config, workdir, progress: bool) -> None:
  from dnas_ee import pipeline
  if command == "run":
    _print_summary(pipeline.run(config, workdir, progress=progress))
  elif command == "search":
    pipeline.search(config, workdir, progress=progress)
    print(f"search done: {Path(workdir) / 'search_arch.json'}")
  elif command == "derive":
    genotype = pipeline.derive(config, workdir)
    print(json.dumps(genotype.to_json()["exits"], indent=1))
  elif command == "retrain":
    pipeline.retrain(config, workdir, progress=progress)
  else:
    _print_summary(pipeline.evaluate(config, workdir))


def _print_summary(summary: dict) -> None:
  from dnas_ee.report import summary_table
  print(summary_table(summary))


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  overrides = [a for a in argv if a.startswith("--config.")]
  args = _parser().parse_args([a for a in argv if not a.startswith("--config.")])
  from dnas_ee.config import ConfigError
  from dnas_ee.errors import SweepError
  from dnas_ee.train.compile_cache import enable_compilation_cache, report_compilations
  enable_compilation_cache()   # ~/.cache/dnas_ee/jax; DNAS_EE_COMPILATION_CACHE=off disables it
  report_compilations()   # one line per compiled step: a long compile is never silent
  try:
    if args.command in STAGE_COMMANDS:
      config = _config(args, overrides)
      if config.mesh.multi_host:   # one run across processes: join them before any JAX work
        from dnas_ee.train.parallel import join_hosts
        join_hosts()
      progress = not args.no_progress
      from dnas_ee.stages import run_config as run_dirs
      with run_dirs.no_config_without_results(args.workdir):
        if args.restart:
          cleared = run_dirs.restart(config, args.workdir)
          print(f"restart: cleared {', '.join(cleared) or 'nothing'} in {args.workdir}")
        else:
          run_dirs.check_same_config(config, args.workdir)
        _stage_command(args.command, config, args.workdir, progress)
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
      _sweep(args)
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
  except SweepError as err:
    print(f"dnas-ee: error: {err}", file=sys.stderr)
    return 1
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


def _sweep(args) -> None:
  from dnas_ee.sweep import run_sweep
  resources = {k: v for k, v in (("cpus", args.cpus_per_member), ("gpus", args.gpus_per_member))
               if v is not None}
  run_sweep(args.sweep, args.workdir, progress=not args.no_progress,
            shared_dir=args.shared_dir or None, executor=args.executor, address=args.address,
            resources=resources)


if __name__ == "__main__":
  sys.exit(main())
