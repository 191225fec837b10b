"""The LUT of a search space: where it lives, which ops it must hold, building it.

One LUT file per accelerator and cost model holds the rows of every search space
built into it so far (``dnas-ee lut build`` merges new rows in)::

    hwmodels/luts/<accelerator>.json            ZigZag (the reference model; shipped)
    hwmodels/luts/<accelerator>.<model>.json    any other model, e.g. .analytic.json

``config.hw.lut`` (a path) overrides the default file. Reading it back as a cost
source, with every check, is ``dnas_ee.hw.lut.cost_source``.

Example:
  >>> from dnas_ee.space.backbones import build_backbone
  >>> from dnas_ee.space.space import make_search_space
  >>> backbone = build_backbone("resnet_cifar", (8, 8, 1), 10, stage_widths=(8, 16, 16),
  ...                           blocks_per_stage=(1, 1, 1), stem_width=8)
  >>> space = make_search_space(backbone, exit_positions=(1,), branch_ops=("conv3_s1_x1",),
  ...                           branch_depth=1, branch_resolutions=(4,), bits=(8,))
  >>> sigs = required_signatures(space)
  >>> sorted({s.op for s in sigs})
  ['add', 'avgpool', 'conv', 'dense', 'gap']
  >>> default_lut_path("edge_tpu_like", "analytic").name
  'edge_tpu_like.analytic.json'
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from dnas_ee.cost.tables import build_cost_tables
from dnas_ee.hw.accelerators.description import Accelerator
from dnas_ee.hw.accelerators.load import hwmodels_dir, load_accelerator
from dnas_ee.hw.lut.build import build_lut, resolve_model
from dnas_ee.hw.lut.format import Lut, LutError, load_lut
from dnas_ee.hw.models import zigzag_model
from dnas_ee.space.signature import OpSignature

# The model of the shipped LUTs, whose files carry no model suffix.
DEFAULT_MODEL = "zigzag"


def accelerator_name(accelerator: Accelerator | str | os.PathLike) -> str:
  """The name of a description given as an ``Accelerator``, a shipped name or a YAML path."""
  if isinstance(accelerator, Accelerator):
    return accelerator.name
  text = os.fspath(accelerator)
  if isinstance(accelerator, os.PathLike) or text.endswith((".yaml", ".yml")) or os.sep in text:
    return Path(text).stem
  return text


def default_lut_path(accelerator: Accelerator | str | os.PathLike,
                     model: str = DEFAULT_MODEL) -> Path:
  """Where the LUT of ``accelerator`` built with cost model ``model`` lives by default.

  Args:
    accelerator: a description, a shipped name or a YAML path (its stem names the file).
    model: ``'zigzag'`` (the shipped LUTs: ``<name>.json``), or another model name
      (``'analytic'``: ``<name>.analytic.json``).

  Returns:
    ``hwmodels/luts/<name>[.<model>].json`` (``hwmodels/`` as ``hwmodels_dir()``).
  """
  suffix = "" if model == DEFAULT_MODEL else f".{model}"
  return hwmodels_dir() / "luts" / f"{accelerator_name(accelerator)}{suffix}.json"


def build_command(accelerator: str, *, output: str | os.PathLike | None = None,
                  model: str | None = None) -> str:
  """The ``dnas-ee lut build`` command line that (re)builds a LUT, for error messages."""
  cmd = f"dnas-ee lut build --config <the config file of the run> --accelerator {accelerator}"
  if model and model != "auto":
    cmd += f" --model {model}"
  if output is not None and Path(output).resolve() != default_lut_path(
      accelerator, model if model not in (None, "auto") else DEFAULT_MODEL).resolve():
    cmd += f" --output {output}"
  return cmd + " [plus the run's --config.* overrides]"


def zigzag_note(accelerator: str, path: Path) -> str:
  """How to do without ZigZag, when the LUT to build is a ZigZag one and ZigZag is missing
  ('' otherwise): appended to the build command of an error message."""
  if zigzag_model.zigzag_available() or path.resolve() != default_lut_path(accelerator).resolve():
    return ""
  analytic = default_lut_path(accelerator, "analytic")
  return (f" (this needs ZigZag: {zigzag_model.INSTALL_HINT}; without it, build the analytic LUT "
          f"with `{build_command(accelerator, model='analytic')}` and add "
          f"--config.hw.lut={analytic} to the run)")


class _Recorder:
  """A cost source that only records which ops it is asked for."""
  metrics = ("recorded",)

  def __init__(self):
    self.seen: set[OpSignature] = set()

  def __call__(self, sig: OpSignature) -> np.ndarray:
    self.seen.add(sig)
    return np.zeros(1)


def required_signatures(space) -> list[OpSignature]:
  """Every op a LUT must hold for ``space``, sorted.

  ``space.all_signatures()`` (the ops an architecture of the space can contain)
  plus whatever else ``build_cost_tables`` asks the cost source for: it also fills
  table entries that no architecture reaches (a first branch slot on an input in
  a wider width state), which are multiplied by zero probability but must still
  be answered, never with a made-up zero. Found by running ``build_cost_tables``
  with a recording source, so it follows the tables whatever they ask.
  """
  recorder = _Recorder()
  build_cost_tables(space, recorder)
  return sorted(recorder.seen | set(space.all_signatures()))


# --------------------------------------------------------------------------- build


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpaceLutBuild:
  """What ``build_space_lut`` did.

  Attributes:
    lut: the rows of this search space (``build_stats``: evaluated vs reused).
    path: the file written (the union of its earlier rows and these).
    model: the cost model, e.g. ``zigzag-3.9.1-onchip-fixed``.
    file_rows: rows in the file after the build.
    spaces: search-space keys the file now covers (``SearchSpace.identity_key``).
    notes: things the caller should tell the user (a stale file rebuilt, a fallback).
  """
  lut: Lut
  path: Path
  model: str
  file_rows: int
  spaces: tuple[str, ...]
  notes: tuple[str, ...] = ()


def _auto_model(acc: Accelerator) -> str:
  return "zigzag" if zigzag_model.zigzag_available() and acc.zigzag_hardware else "analytic"


def _read_existing(path: Path) -> Lut | None:
  if not path.exists():
    return None
  try:
    return load_lut(path)
  except LutError as err:
    raise LutError(f"{err} (this build would extend that file: delete it to rebuild from "
                   "scratch, or write elsewhere with --output PATH)") from None


def build_space_lut(space, accelerator: Accelerator | str | os.PathLike, *, model: str = "auto",
                    output: str | os.PathLike | None = None, workers: int | None = None,
                    progress: bool = True, mapping_search: bool = False,
                    residency: str = "onchip") -> SpaceLutBuild:
  """Builds (or extends) the LUT of ``accelerator`` with every op of ``space``
  (``required_signatures``).

  The file is its own cache: rows already there (same description hash and model)
  are reused, only new ops are evaluated, and the file is rewritten with the union,
  so one file serves every search space built into it. One file holds one cost
  model: extending a file with another model is refused.

  Args:
    space: a ``SearchSpace``.
    accelerator: a description, shipped name or YAML path.
    model: ``'zigzag'``, ``'analytic'`` or ``'auto'``: the model of the file at
      ``output`` when it exists, else ZigZag when installed (and the description
      names ZigZag files), else analytic.
    output: the LUT file; default ``default_lut_path(accelerator, model)``.
    workers: processes for the evaluations (``None``/``0``: automatic, see ``build_lut``).
    progress: progress bar and build messages on stderr.
    mapping_search: ZigZag only: search the mapping (1-3 s per op; model
      ``zigzag-<version>-search``) instead of the fixed one.
    residency: ZigZag only: ``'onchip'`` (default) or ``'dram'`` (see ``zigzag_model``).

  Raises:
    LutError: ``output`` holds another accelerator's LUT, another model's, or is malformed.
    ZigZagError: ZigZag was asked for but is not installed or failed.
  """
  acc = accelerator if isinstance(accelerator, Accelerator) else load_accelerator(accelerator)
  if model not in ("auto", "zigzag", "analytic"):
    raise ValueError(f"model={model!r}: use 'auto', 'zigzag' or 'analytic'")
  notes = []
  if output:
    path = Path(output).expanduser()
    existing = _read_existing(path)
    if model == "auto":
      usable = (existing is not None and existing.accelerator == acc.name
                and existing.accelerator_hash == acc.description_hash)
      model = existing.model_name if usable else _auto_model(acc)
      if model not in ("zigzag", "analytic"):
        raise LutError(f"{path} holds {existing.model_name} rows, which no cost model can "
                       "extend: write the built LUT elsewhere with --output PATH")
  else:
    if model == "auto":
      model = _auto_model(acc)
      if model == "analytic" and acc.zigzag_hardware:
        notes.append(f"ZigZag is not installed: built the analytic LUT; runs read "
                     f"{default_lut_path(acc)} unless given --config.hw.lut="
                     f"{default_lut_path(acc, 'analytic')}")
    path = default_lut_path(acc, model)
    existing = _read_existing(path)
  name, version = resolve_model(model, acc, mapping_search, residency)
  spaces: list[str] = []
  if existing is not None:
    if existing.accelerator != acc.name:
      raise LutError(f"{path} holds the LUT of accelerator {existing.accelerator!r}, not "
                     f"{acc.name!r}: write {acc.name!r}'s LUT elsewhere with --output PATH")
    if existing.accelerator_hash != acc.description_hash:
      notes.append(f"{path} was built from an older description of {acc.name!r}: every op is "
                   "evaluated again and the rows of other search spaces are dropped (rebuild "
                   "them with their configs)")
    elif (existing.model_name, existing.model_version) != (name, version):
      raise LutError(f"{path} holds {existing.model_name}-{existing.model_version} rows, and this "
                     f"build makes {name}-{version} rows: one LUT file holds one cost model. "
                     f"Delete {path} to rebuild it whole with {name}-{version}, or write "
                     "elsewhere with --output PATH (and point --config.hw.lut at it)")
    else:
      spaces = existing.space_signature.split()
  key = space.identity_key()
  spaces = spaces + [key] if key not in spaces else spaces
  lut = build_lut(required_signatures(space), acc, model=model, cache_path=path,
                  workers=workers or None, progress=progress, space_signature=" ".join(spaces),
                  mapping_search=mapping_search, residency=residency)
  file_rows = len(load_lut(path))
  return SpaceLutBuild(lut=lut, path=path, model=f"{name}-{version}", file_rows=file_rows,
                       spaces=tuple(spaces), notes=tuple(notes))


__all__ = ["DEFAULT_MODEL", "SpaceLutBuild", "accelerator_name", "build_command", "build_space_lut",
           "default_lut_path", "required_signatures", "zigzag_note"]
