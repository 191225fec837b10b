"""The trajectory of every architecture decision during a search, and its plots.

The search step logs, at every ``search.log_every`` steps, the probabilities the
architecture step saw: exit gates ``sigmoid(beta / T)``, exit thresholds, op
mixtures per branch slot and bit-width mixtures per quantization group
(``search_metrics.jsonl``). ``trajectory_from_metrics`` collects them into one
JSON-ready record (``search_trajectory.json``) and ``plot_trajectory`` draws them
against the step, as DARTS-style papers do, so a user sees when and how each
choice was made.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

TRAJECTORY_KEYS = ("gates", "thresholds", "op_probs", "backbone_bit_probs", "branch_bit_probs")


def trajectory_from_metrics(metrics_path) -> dict:
  """``{"step": [T], key: [T, ...]}`` for every logged decision (``TRAJECTORY_KEYS``).

  Raises:
    FileNotFoundError: no metrics file; ValueError: it holds no decision records.
  """
  path = Path(metrics_path)
  if not path.exists():
    raise FileNotFoundError(f"{path} is missing: run `dnas-ee search` first")
  rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  rows = [r for r in rows if "gates" in r]
  if not rows:
    raise ValueError(f"{path} holds no architecture probabilities (a search from before they "
                     f"were logged?): re-run the search")
  out = {"step": [int(r["step"]) for r in rows]}
  for key in TRAJECTORY_KEYS:
    if key in rows[0]:
      out[key] = [r[key] for r in rows]
  return out


def _labels(names: Sequence[str] | None, count: int, prefix: str) -> list[str]:
  return list(names) if names is not None else [f"{prefix}{i}" for i in range(count)]


def plot_trajectory(trajectory: dict, out_dir, *, positions: Sequence[int] | None = None,
                    slot_ops: Sequence[Sequence[Sequence[str]]] | None = None,
                    bits: Sequence[int] | None = None, warmup_steps: int = 0) -> list[Path]:
  """Draws gates/thresholds, op probabilities and bit-width probabilities against the step.

  Args:
    trajectory: from ``trajectory_from_metrics``.
    out_dir: where the PNGs go (created).
    positions: block after which each candidate exit sits (labels).
    slot_ops: ``[P][D][K]`` op names (labels).
    bits: candidate bit widths (labels).
    warmup_steps: drawn as a shaded band (the architecture is frozen there).

  Returns:
    The written PNG paths.
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  steps = np.asarray(trajectory["step"])
  written = []

  def shade(ax):
    if warmup_steps:
      ax.axvspan(0, warmup_steps, color="0.9", label="warm-up (frozen)")
    ax.set_xlabel("search step")

  gates = np.asarray(trajectory["gates"])                       # [T, P]
  if gates.ndim == 2 and gates.shape[1]:
    p = gates.shape[1]
    names = _labels([f"exit after block {q}" for q in positions] if positions else None, p, "exit ")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for i in range(p):
      axes[0].plot(steps, gates[:, i], label=names[i])
    axes[0].axhspan(0.1, 0.9, color="0.95")
    axes[0].axhline(0.5, color="0.5", lw=0.8, ls="--")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_title("exit gates g_i (band: undecided)")
    shade(axes[0])
    if "thresholds" in trajectory:
      th = np.asarray(trajectory["thresholds"])
      for i in range(p):
        axes[1].plot(steps, th[:, i], label=names[i])
      axes[1].set_title("exit thresholds tau_i")
      shade(axes[1])
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    written.append(out_dir / "search_gates.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    ops = np.asarray(trajectory["op_probs"])                    # [T, P, D, K]
    d = ops.shape[2]
    fig, axes = plt.subplots(p, d, figsize=(4.2 * d, 2.8 * p), squeeze=False)
    for i in range(p):
      for s in range(d):
        ax = axes[i][s]
        k_names = (slot_ops[i][s] if slot_ops else [f"op {k}" for k in range(ops.shape[3])])
        for k in range(ops.shape[3]):
          ax.plot(steps, ops[:, i, s, k], label=k_names[k])
        ax.set_title(f"{names[i]}, slot {s + 1}", fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        shade(ax)
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    written.append(out_dir / "search_ops.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

  groups = [("backbone block", np.asarray(trajectory["backbone_bit_probs"]))]
  if gates.ndim == 2 and gates.shape[1]:
    groups.append(("branch", np.asarray(trajectory["branch_bit_probs"])))
  rows = sum(g.shape[1] for _, g in groups)
  cols = min(rows, 4)
  fig, axes = plt.subplots(-(-rows // cols), cols, figsize=(3.4 * cols, 2.6 * -(-rows // cols)),
                           squeeze=False)
  r = 0
  for kind, probs in groups:
    for g in range(probs.shape[1]):
      ax = axes[r // cols][r % cols]
      for b in range(probs.shape[2]):
        ax.plot(steps, probs[:, g, b], label=f"{bits[b]} bit" if bits else f"width {b}")
      ax.set_title(f"{kind} {g + 1}", fontsize=9)
      ax.set_ylim(-0.02, 1.02)
      shade(ax)
      r += 1
  for extra in range(r, axes.size):
    axes[extra // cols][extra % cols].axis("off")
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  written.append(out_dir / "search_bits.png")
  fig.savefig(written[-1], dpi=110)
  plt.close(fig)
  return written
