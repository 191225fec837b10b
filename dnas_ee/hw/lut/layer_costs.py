"""Cost any layer on any shipped accelerator: a LUT, filled in by a model where it is silent.

The shipped LUTs hold the ops of the shipped search spaces; a user's own network
has other shapes and bit widths. ``LayerCosts`` is a cost source
(``OpSignature -> [latency_s, energy_j, ...]``, see ``dnas_ee.cost``) that looks
each op up in the accelerator's LUT and, for an op the LUT lacks, either

- ``missing='fill'``: evaluates it with the analytic or ZigZag model (by default
  the LUT's own model when it can run here, so filled rows match the LUT's),
  keeps the result (in memory, and in ``cache_path`` when given) and warns once
  per batch of fills with how many layers were filled; or
- ``missing='error'``: raises ``LutError`` naming the ops and a fix that needs no
  config file (``missing='fill'``, or ``build_lut`` on the ops into a file).

Example:
  >>> from dnas_ee.space.signature import OpSignature
  >>> costs = LayerCosts("edge_tpu_like", lut=None, fill_model="analytic")
  >>> sig = OpSignature("conv", 8, 8, 3, 5, kernel=3)
  >>> costs.table([[sig], [sig, sig]]).shape  # [segments, metrics]; warns: 1 layer filled
  (2, 2)
"""
from __future__ import annotations

import inspect
import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from dnas_ee.hw.accelerators.description import Accelerator
from dnas_ee.hw.accelerators.load import load_accelerator
from dnas_ee.hw.lut.build import build_lut
from dnas_ee.hw.lut.format import Lut, LutError, load_lut
from dnas_ee.hw.lut.space import default_lut_path
from dnas_ee.hw.models.zigzag_model import zigzag_available
from dnas_ee.space.signature import OpSignature

METRICS = ("latency_s", "energy_j", "cycles", "macs")
_DEFAULT = "default"


def _user_stacklevel() -> int:
  """The ``stacklevel`` that points a warning at the first frame outside dnas-ee."""
  root = str(Path(__file__).resolve().parents[2])   # the dnas_ee package (dnas_ee/hw/lut/)
  frame, level = inspect.currentframe().f_back, 1   # the frame that calls warnings.warn
  while frame is not None and frame.f_code.co_filename.startswith(root):
    frame, level = frame.f_back, level + 1
  return level


class LayerCosts:
  """Per-layer latency/energy on one accelerator, from its LUT and a cost model.

  Attributes:
    metrics: the metric names, in the order of every returned vector.
    accelerator: the loaded ``Accelerator``.
    lut: the LUT read (``None`` when there is none: every op is filled).
    filled: how many ops were computed by the model so far.
  """

  def __init__(self, accelerator: Accelerator | str | os.PathLike = "edge_tpu_like", *,
               lut: Lut | str | os.PathLike | None = _DEFAULT, missing: str = "fill",
               fill_model: str = "auto", cache_path: str | os.PathLike | None = None,
               metrics: Sequence[str] = ("latency_s", "energy_j")):
    """Args:
      accelerator: a shipped name (``list_accelerators()``), a YAML path or a description.
      lut: a loaded ``Lut``, a LUT file, ``None`` (every op from the model), or by
        default the accelerator's shipped LUT of the fill model
        (``default_lut_path(accelerator, fill_model)``: the ZigZag LUT when ZigZag
        is installed, else the analytic one), so that every row of a table comes
        from one model; an absent file is fine with ``missing='fill'``.
      missing: ``'fill'`` (compute missing ops with ``fill_model``, with a
        one-line warning) or ``'error'`` (raise ``LutError``).
      fill_model: ``'analytic'``, ``'zigzag'`` or ``'auto'`` (ZigZag when it is
        installed and the LUT, if one is given, holds ZigZag rows; else analytic).
      cache_path: a LUT file that keeps filled ops across runs (read and extended).
      metrics: any of ``('latency_s', 'energy_j', 'cycles', 'macs')``.
    Raises:
      LutError: the LUT is unreadable, or was built for another accelerator or
        another version of its description.
    """
    if missing not in ("fill", "error"):
      raise ValueError(f"missing={missing!r}: use 'fill' (compute missing ops with a model) or "
                       "'error' (raise)")
    if fill_model not in ("auto", "analytic", "zigzag"):
      raise ValueError(f"fill_model={fill_model!r}: use 'auto', 'analytic' or 'zigzag'")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
      raise ValueError(f"metrics={tuple(metrics)!r}: choose from {METRICS}")
    self.accelerator = (accelerator if isinstance(accelerator, Accelerator)
                        else load_accelerator(accelerator))
    self.metrics = tuple(metrics)
    self.missing = missing
    self.cache_path = Path(cache_path) if cache_path else None
    zigzag_ok = zigzag_available() and bool(self.accelerator.zigzag_hardware)
    if lut == _DEFAULT:
      # One table, one model: the shipped LUT of the model that fills the gaps.
      if fill_model == "auto":
        fill_model = "zigzag" if zigzag_ok else "analytic"
      lut = default_lut_path(self.accelerator, fill_model)
      lut = lut if lut.is_file() else None
    self.lut = self._read_lut(lut)
    if fill_model == "auto":
      fill_model = ("zigzag" if self.lut is not None and self.lut.model_name == "zigzag"
                    and zigzag_ok else "analytic")
    self.fill_model = fill_model
    self.filled = 0
    self._rows: dict[str, np.ndarray] = {}

  def _read_lut(self, lut) -> Lut | None:
    acc = self.accelerator
    if lut is None or isinstance(lut, Lut):
      loaded = lut
    else:
      loaded = load_lut(Path(lut).expanduser())
    if loaded is not None:
      hint = (f"pass lut=None to compute every op with the {acc.name!r} model, or a LUT "
              f"built for it (dnas_ee.hw.build_lut(ops, {acc.name!r}, cache_path=...))")
      if loaded.accelerator != acc.name:
        raise LutError(f"{loaded.path or 'the LUT'} was built for {loaded.accelerator!r}, not "
                       f"{acc.name!r}: {hint}")
      loaded.check_accelerator(acc, build_hint=hint)
    return loaded

  def _vector(self, cost) -> np.ndarray:
    row = np.array([float(getattr(cost, m)) for m in self.metrics], np.float64)
    row.flags.writeable = False
    return row

  def _where(self) -> str:
    if self.lut is None:
      return f"LUT of {self.accelerator.name!r} (none loaded)"
    return f"LUT {self.lut.path or '(in memory)'} of {self.accelerator.name!r}"

  def prefetch(self, signatures: Iterable[OpSignature]) -> None:
    """Looks up every op, filling the missing ones in one pass (one warning with the count).

    Raises:
      LutError: with ``missing='error'``, naming the ops the LUT lacks and the fix.
    """
    todo = list(dict.fromkeys(s for s in signatures if s.key() not in self._rows))
    missing = []
    for sig in todo:
      if self.lut is not None and sig in self.lut:
        self._rows[sig.key()] = self._vector(self.lut.lookup(sig))
      else:
        missing.append(sig)
    if not missing:
      return
    if self.missing == "error":
      shown = ", ".join(s.key() for s in missing[:3]) + (
          f" and {len(missing) - 3} more" if len(missing) > 3 else "")
      raise LutError(
          f"{len(missing)} layers are not in the {self._where()}: {shown}. Fix (no config "
          f"needed): LayerCosts({self.accelerator.name!r}, missing='fill') computes them with "
          f"the {self.fill_model} model, or build them into a file once with "
          f"dnas_ee.hw.build_lut(ops, {self.accelerator.name!r}, model='{self.fill_model}', "
          f"cache_path='my_lut.json') and pass lut='my_lut.json'")
    built = build_lut(missing, self.accelerator, model=self.fill_model, cache_path=self.cache_path,
                      workers=1, progress=False)
    for sig in missing:
      self._rows[sig.key()] = self._vector(built.lookup(sig))
    self.filled += len(missing)
    cached = f", cached in {self.cache_path}" if self.cache_path else ""
    warnings.warn(f"dnas-ee: {len(missing)} of {len(todo)} layers were not in the "
                  f"{self._where()}; computed them with the {self.fill_model} model{cached}",
                  stacklevel=_user_stacklevel())

  def __call__(self, sig: OpSignature) -> np.ndarray:
    """[M] metrics of one op (a ``dnas_ee.cost`` cost source)."""
    row = self._rows.get(sig.key())
    if row is None:
      self.prefetch([sig])
      row = self._rows[sig.key()]
    return row

  def table(self, segments: Sequence[Sequence[OpSignature]]) -> np.ndarray:
    """[S, M] summed metrics of each segment's layers (all looked up in one pass).

    Args:
      segments: ``S`` lists of ops, e.g. ``TracedNetwork.backbone``.
    """
    self.prefetch(s for seg in segments for s in seg)
    rows = [np.sum([self(s) for s in seg], axis=0) if seg else np.zeros(len(self.metrics))
            for seg in segments]
    return np.stack(rows).reshape(len(segments), len(self.metrics))

  def __repr__(self) -> str:
    return (f"LayerCosts({self.accelerator.name!r}, {self._where()}, missing={self.missing!r}, "
            f"fill_model={self.fill_model!r}, metrics={self.metrics})")


__all__ = ["LayerCosts"]
