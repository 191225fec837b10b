"""Shared host-side loop pieces: batches, metrics files, non-finite stops."""
from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import numpy as np

from dnas_ee.data.pipeline import batch_indices
from dnas_ee.train.parallel import host_slice, shard_batch


class NonFiniteError(RuntimeError):
  """Training produced NaN/Inf; the state and the checkpoints stop before it."""


def to_python(tree):
  """Device metrics -> JSON-friendly Python values."""
  def conv(x):
    x = np.asarray(x)
    return x.item() if x.ndim == 0 else x.tolist()
  return jax.tree.map(conv, jax.device_get(tree))


def host_batch(mesh, images: np.ndarray, labels: np.ndarray, seed: int, step: int, batch_size: int):
  """The global batch of ``step`` (a pure function of seed and step), placed on the mesh."""
  idx = batch_indices(seed, step, len(labels), batch_size)[host_slice(batch_size)]
  return shard_batch(mesh, images[idx], labels[idx].astype(np.int32))


class MetricsLog:
  """Append-only JSONL; on resume, drops lines from steps after the restored one."""

  def __init__(self, path: str | Path, resume_step: int):
    self.path = Path(path)
    lines = self.path.read_text().splitlines() if self.path.exists() else []
    kept = [l for l in lines if l.strip() and json.loads(l).get("step", 0) <= resume_step]
    self.path.write_text("".join(l + "\n" for l in kept))

  def write(self, record: dict) -> None:
    with self.path.open("a") as f:
      f.write(json.dumps(record) + "\n")


def check_finite(nonfinite_step, what: str, checkpoint_dir: Path, last_saved: int | None,
                 advice: str) -> None:
  bad = int(jax.device_get(nonfinite_step))
  if bad >= 0:
    saved = (f"the last good checkpoint (step {last_saved}) in {checkpoint_dir} is intact"
             if last_saved is not None else "no checkpoint had been written yet")
    raise NonFiniteError(f"{what}: non-finite loss or weights at step {bad}; the run stopped and "
                         f"{saved}. {advice}")


def is_finite_number(x) -> bool:
  return isinstance(x, (int, float)) and math.isfinite(x)
