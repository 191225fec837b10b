"""``dnas-ee lut build|show|measure``: the LUT subcommands (flags parsed in ``dnas_ee.cli``).

    dnas-ee lut build --config experiments/configs/cifar10_mbv2.py --accelerator edge_tpu_like \\
        [--model auto|zigzag|analytic] [--workers N] [--output PATH] [--config.a.b=v ...]
    dnas-ee lut show [PATH] [--accelerator NAME] [--config X]
    dnas-ee lut measure --config experiments/configs/digits.py --output PATH [--repeats N]

``build`` enumerates every op the config's search space can produce (the data set
is not loaded: only its shape is needed, ``dnas_ee.data.shapes``) and evaluates
the ones the LUT file lacks; the file (``hwmodels/luts/<accelerator>.json`` for
ZigZag, ``<accelerator>.analytic.json`` for the analytic model, or ``--output``,
or the config's ``hw.lut``) keeps the rows of every space built into it.
``show`` prints a LUT as a table; with ``--config`` it also says whether the LUT
covers that config's search space. ``measure`` times every op of the config's
search space on the current JAX device (``dnas_ee.hw.lut.measure``).

The search space is built by the caller (``space_of``: config -> ``SearchSpace``,
``dnas_ee.train.build.build_space`` at the data set's shape): the hardware layer
sits below training and does not import it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from dnas_ee import config as cfg
from dnas_ee.hw.accelerators.description import AcceleratorError
from dnas_ee.hw.accelerators.load import load_accelerator
from dnas_ee.hw.lut.cost_source import load_checked_lut
from dnas_ee.hw.lut.format import LutError, format_lut_table, load_lut
from dnas_ee.hw.lut.measure import measure_space_lut
from dnas_ee.hw.lut.space import (build_command, build_space_lut, default_lut_path,
                                  required_signatures)
from dnas_ee.hw.models.zigzag_model import ZigZagError


def _load_config(path: str, overrides):
  config = cfg.load_config_file(path)
  cfg.apply_overrides(config, overrides)
  cfg.check_keys(config)
  return config


def lut_command(args, overrides, space_of: Callable) -> None:
  """Runs ``dnas-ee lut build``, ``show`` or ``measure`` from parsed ``args``.

  Args:
    args: the ``argparse`` namespace of ``dnas_ee.cli`` (``lut_command`` is
      ``'build'``, ``'show'`` or ``'measure'``).
    overrides: ``--config.a.b=value`` strings applied to the loaded config.
    space_of: config -> the ``SearchSpace`` of that config.

  Raises:
    LutError, ConfigError, AcceleratorError, DataError (all ``ValueError``): printed
      by ``dnas_ee.cli.main`` as one error line.
  """
  try:
    if args.lut_command == "build":
      lut_build(args, overrides, space_of)
    elif args.lut_command == "show":
      lut_show(args, overrides, space_of)
    elif args.lut_command == "measure":
      lut_measure(args, overrides, space_of)
    else:
      raise ValueError(f"unknown lut subcommand {args.lut_command!r}; use build, show or measure")
  except ZigZagError as err:  # a RuntimeError: make it a one-line CLI error too
    raise LutError(str(err)) from err


def lut_build(args, overrides, space_of: Callable) -> None:
  """``dnas-ee lut build``: extends (or creates) the LUT file with the config's search space."""
  config = _load_config(args.config, overrides)
  space = space_of(config)
  output = args.output or (config.hw.lut if config.hw.accelerator in ("", args.accelerator)
                           else "")
  start = time.perf_counter()
  result = build_space_lut(space, args.accelerator, model=args.model, output=output or None,
                           workers=args.workers or None, progress=True,
                           mapping_search=getattr(args, "mapping_search", False),
                           residency=getattr(args, "residency", "onchip"))
  seconds = time.perf_counter() - start
  stats = result.lut.build_stats
  for note in result.notes:
    print(f"note: {note}")
  print(f"{result.path}: {len(result.lut)} ops of this search space ({stats.evaluated} evaluated, "
        f"{stats.reused} reused) with {result.model} in {seconds:.1f} s; the file holds "
        f"{result.file_rows} rows for {len(result.spaces)} search space(s)")
  if result.path.resolve() != default_lut_path(args.accelerator).resolve():
    print(f"use it with: --config.hw.accelerator={args.accelerator} "
          f"--config.hw.lut={result.path}")
  else:
    print(f"use it with: --config.hw.accelerator={args.accelerator}")


def lut_show(args, overrides, space_of: Callable) -> None:
  """``dnas-ee lut show``: prints a LUT; with ``--config``, whether it covers that search space."""
  config = _load_config(args.config, overrides) if args.config else None
  name = args.accelerator or (config.hw.accelerator if config is not None else "")
  if args.path:
    path = Path(args.path)
  elif config is not None and config.hw.lut and config.hw.accelerator in ("", name):
    path = Path(config.hw.lut)
  elif name:
    path = default_lut_path(name)
  else:
    raise LutError("dnas-ee lut show needs a LUT: give its path, or --accelerator NAME for the "
                   "shipped one (hwmodels/luts/NAME.json), or a --config that sets hw.accelerator")
  if not path.is_file():
    raise LutError(f"no LUT at {path}: build it with: "
                   f"{build_command(name or '<name>', output=path if args.path else None)}")
  lut = load_lut(path)
  print(format_lut_table(lut))
  models = sorted({c.model for c in lut.rows.values()})
  print(f"row models: {', '.join(models)}")
  try:
    acc = load_accelerator(name or lut.accelerator)
  except AcceleratorError:
    print(f"accelerator description: {lut.accelerator!r} not found, not checked")
    return
  if config is None:
    stale = lut.accelerator_hash != acc.description_hash
    print(f"accelerator description {acc.path}: "
          f"{'STALE (changed since the LUT was built)' if stale else 'up to date'}")
    return
  space = space_of(config)
  hint = build_command(acc.name, output=path)
  signatures = required_signatures(space)
  load_checked_lut(path, acc, signatures, build_hint=hint)
  print(f"accelerator description {acc.path}: up to date; the LUT covers all "
        f"{len(signatures)} ops of the config's search space")


def lut_measure(args, overrides, space_of: Callable) -> None:
  """``dnas-ee lut measure``: times every op of the config's space on this JAX device."""
  config = _load_config(args.config, overrides)
  space = space_of(config)
  start = time.perf_counter()
  lut = measure_space_lut(space, args.output, repeats=args.repeats, warmup=args.warmup,
                          batch_size=args.batch_size, progress=True)
  print(f"{lut.path}: {len(lut)} ops measured on {lut.accelerator} in "
        f"{time.perf_counter() - start:.1f} s (median of {args.repeats}, batch {args.batch_size})")
  print(f"use it with: --config.hw.accelerator={lut.accelerator} --config.hw.lut={lut.path}")
