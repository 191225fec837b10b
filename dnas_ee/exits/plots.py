"""Plots of a threshold calibration, written as PNG files.

Uses matplotlib's object API on an Agg canvas: no display, no pyplot state, and
the process-wide backend is left alone.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dnas_ee.exits.thresholds import Calibration, ParetoFront


def _save(fig: Figure, path: str | os.PathLike) -> None:
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  FigureCanvasAgg(fig)
  fig.savefig(path, format="png", dpi=120)


def plot_pareto(front: ParetoFront, chosen: Calibration | None,
                static_point: tuple[float, float] | None, path: str | os.PathLike, *,
                cost_label: str, points: Sequence[tuple[float, float, str]] = (),
                title: str = "") -> None:
  """Accuracy against expected cost: every evaluated setting, the front, the choice.

  Args:
    front: the evaluated threshold settings (``Calibration.front``).
    chosen: the calibration to mark, or None.
    static_point: ``(cost, accuracy)`` of the static backbone, or None.
    path: output PNG file (parent folders are created).
    cost_label: x-axis label, e.g. ``"MACs (M)"`` or ``"energy (J)"``.
    points: further ``(cost, accuracy, label)`` points to mark (e.g. the chosen
      thresholds evaluated on another split).
    title: figure title, or none.

  Example:
    >>> plot_pareto(cal.front, cal, (static_macs, static_acc), "out/pareto.png",
    ...             cost_label="MACs")  # doctest: +SKIP
  """
  fig = Figure(figsize=(6, 4.5))
  ax = fig.add_subplot()
  if len(front.cost):
    ax.scatter(front.cost, 100 * front.accuracy, s=6, c="0.75", lw=0, rasterized=True,
               label=f"evaluated ({len(front.cost)})")
  if len(front.pareto):
    ax.step(front.cost[front.pareto], 100 * front.accuracy[front.pareto], where="post", c="C0",
            marker="o", ms=3, label="Pareto front" + ("" if front.exact else " (approximate)"))
  if chosen is not None:
    ax.scatter([chosen.expected_cost], [100 * chosen.accuracy], marker="*", s=180, c="C3",
               zorder=5, label=f"chosen ({chosen.mode}={chosen.parameter:g})")
  if static_point is not None:
    ax.scatter([static_point[0]], [100 * static_point[1]], marker="X", s=90, c="k", zorder=5,
               label="static backbone")
  for k, (cost, accuracy, label) in enumerate(points):
    ax.scatter([cost], [100 * accuracy], marker="*^sDv"[k % 5], s=150 if k == 0 else 70,
               c=f"C{(k + 3) % 10}", zorder=6, label=label)
  if title:
    ax.set_title(title, fontsize="medium")
  ax.set_xlabel(cost_label)
  ax.set_ylabel("accuracy (%)")
  ax.grid(alpha=0.3)
  ax.legend(loc="lower right", fontsize="small")
  fig.tight_layout()
  _save(fig, path)


def plot_exit_distribution(exit_rates: Sequence[float], exit_names: Sequence[str],
                           path: str | os.PathLike) -> None:
  """Bar chart of the fraction of samples leaving at each exit.

  Args:
    exit_rates: ``[E]`` fractions (e.g. ``Calibration.exit_rates``).
    exit_names: ``E`` labels, e.g. ``["block 2", "block 4", "final"]``.
    path: output PNG file (parent folders are created).

  Example:
    >>> plot_exit_distribution([0.5, 0.2, 0.3], ["e1", "e2", "final"],
    ...                        "out/exits.png")  # doctest: +SKIP
  """
  rates = np.asarray(exit_rates, dtype=np.float64).reshape(-1)
  if len(exit_names) != len(rates):
    raise ValueError(f"exit_names has {len(exit_names)} labels for {len(rates)} exit rates; "
                     f"give one name per exit, final last")
  fig = Figure(figsize=(max(4.0, 0.9 * len(rates) + 2), 3.5))
  ax = fig.add_subplot()
  bars = ax.bar(range(len(rates)), 100 * rates, color="C0")
  ax.bar_label(bars, labels=[f"{100 * r:.1f}%" for r in rates], fontsize="small")
  ax.set_xticks(range(len(rates)), [str(name) for name in exit_names])
  ax.set_ylabel("samples leaving (%)")
  ax.set_ylim(0, max(100 * rates.max(initial=0) * 1.15, 1))
  ax.grid(axis="y", alpha=0.3)
  fig.tight_layout()
  _save(fig, path)
