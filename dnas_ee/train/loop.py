"""The training loop shared by the search and the retraining: ``fit``.

``fit`` drives a jitted step function over batches that are pure functions of
the step, resumes from the latest orbax checkpoint, logs metrics (JSONL and
TensorBoard event files), checkpoints on its own cadence, and stops at the first
non-finite step (the step functions freeze their state there and record the
step in ``state.nonfinite_step``), writing no checkpoint past it. Only process 0
writes the metrics files in a multi-host run; every process takes part in the
checkpoints (orbax coordinates them).
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable, Sequence

import jax
import numpy as np
from tqdm.auto import tqdm

from dnas_ee.checkpoint import Checkpointer
from dnas_ee.data.batching import batch_indices
from dnas_ee.train.parallel import host_slice, shard_batch


class NonFiniteError(RuntimeError):
  """Training produced NaN/Inf; the state and the checkpoints stop before it."""


@dataclasses.dataclass(frozen=True)
class Cadence:
  """How often a loop logs and checkpoints (``search.*`` or ``retrain.*`` of the config).

  Attributes:
    log_every: steps between metric records (and non-finite checks).
    checkpoint_every: steps between checkpoints; the last step is always saved.
    keep_checkpoints: how many checkpoints orbax keeps.
  """
  log_every: int
  checkpoint_every: int
  keep_checkpoints: int = 2

  @classmethod
  def from_config(cls, section) -> Cadence:
    return cls(int(section.log_every), int(section.checkpoint_every),
               int(section.keep_checkpoints))


def is_primary() -> bool:
  """Whether this process writes the run's files (process 0 of a multi-host run)."""
  return jax.process_index() == 0


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


def _scalars(record: dict, prefix: str = ""):
  """(tag, float) pairs of a metrics record; vectors as ``name/i``."""
  for key, value in record.items():
    tag = f"{prefix}{key}"
    if isinstance(value, dict):
      yield from _scalars(value, tag + "/")
    elif isinstance(value, (list, tuple)):
      for i, v in enumerate(np.asarray(value, np.float64).reshape(-1)):
        yield f"{tag}/{i}", float(v)
    elif isinstance(value, (bool, int, float)):
      yield tag, float(value)


def _records_until(path: Path, step: int) -> list[dict]:
  lines = Path(path).read_text().splitlines() if Path(path).exists() else []
  return [r for r in map(json.loads, filter(str.strip, lines)) if r.get("step", 0) <= step]


def logged_seconds(path: str | Path, step: int) -> float:
  """Wall-clock seconds a loop had run when it logged its last record at or before
  ``step`` (``time_s`` counts across resumes); 0.0 without such a record."""
  kept = _records_until(Path(path), step)
  return float(kept[-1].get("time_s", 0.0)) if kept else 0.0


class MetricsLog:
  """Append-only JSONL plus TensorBoard event files; on resume, drops what came after
  the restored step.

  Args:
    path: the JSONL file.
    resume_step: the step the run resumes from (0 for a fresh run).
    tensorboard_dir: folder of the TensorBoard event files (None: none written).
  """

  def __init__(self, path: str | Path, resume_step: int, tensorboard_dir: str | Path | None = None):
    self.path = Path(path)
    self.enabled = is_primary()
    self._writer = None
    if not self.enabled:
      return
    kept = _records_until(self.path, resume_step)
    self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    if tensorboard_dir is not None:
      from tensorboardX import SummaryWriter   # imported here: only where events are written
      # purge_step hides the events of steps after the restored one (a resumed run).
      self._writer = SummaryWriter(str(tensorboard_dir), purge_step=resume_step + 1 or None)

  def write(self, record: dict) -> None:
    if not self.enabled:
      return
    with self.path.open("a") as f:
      f.write(json.dumps(record) + "\n")
    if self._writer is not None:
      step = int(record.get("step", 0))
      for tag, value in _scalars({k: v for k, v in record.items() if k != "step"}):
        self._writer.add_scalar(tag, value, step)

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None


def check_finite(nonfinite_step, what: str, checkpoint_dir: Path, last_saved: int | None,
                 advice: str) -> None:
  """Raises ``NonFiniteError`` if the state recorded a non-finite step."""
  bad = int(jax.device_get(nonfinite_step))
  if bad >= 0:
    saved = (f"the last good checkpoint (step {last_saved}) in {checkpoint_dir} is intact"
             if last_saved is not None else "no checkpoint had been written yet")
    raise NonFiniteError(f"{what}: non-finite loss or weights at step {bad}; the run stopped and "
                         f"{saved}. {advice}")


def fit(state, step_fn: Callable, batches: Callable[[int], Sequence], *, steps: int,
        cadence: Cadence, checkpoint_dir: Path, metrics_path: Path, name: str, advice: str,
        progress: bool = True, postfix: dict | None = None, tensorboard_dir: Path | None = None):
  """Runs ``state, metrics = step_fn(state, *batches(step))`` for ``step < steps``.

  Resumes from the latest checkpoint in ``checkpoint_dir`` (so an interrupted run
  continues exactly: batches are functions of the step), writes a metrics record
  ``{"step", "time_s", **metrics}`` every ``cadence.log_every`` steps and at the end
  (``time_s``: seconds since the loop first started, summed over resumes; the time
  between the restored step and its last record before it is not counted),
  and a checkpoint every ``cadence.checkpoint_every`` steps and at the end.

  Args:
    state: a freshly built state (the restore template); it needs a
      ``nonfinite_step`` field (``-1`` while every step was finite).
    step_fn: the jitted step (it may donate ``state``).
    batches: step -> the step function's batch arguments.
    steps: total steps.
    cadence: logging and checkpoint cadence.
    checkpoint_dir: orbax checkpoints of this loop.
    metrics_path: the JSONL metrics file.
    name: what the loop is, in the progress bar and the errors (e.g. ``"search"``).
    advice: the fix named by the non-finite error.
    progress: show a progress bar.
    postfix: progress-bar label -> metric name (a scalar) shown after each record.
    tensorboard_dir: TensorBoard event files of the metrics (None: none).

  Returns:
    The final state.

  Raises:
    NonFiniteError: a step produced NaN/Inf (the message names the step, the last
      good checkpoint and ``advice``).
    CheckpointMismatchError: the latest checkpoint has another structure.
  """
  ckpt = Checkpointer(checkpoint_dir, max_to_keep=cadence.keep_checkpoints)
  start = ckpt.latest_step() or 0
  if start:
    state = ckpt.restore(state, start)
  log = MetricsLog(metrics_path, start, tensorboard_dir)
  bar = tqdm(total=steps, initial=start, desc=name, disable=not progress, dynamic_ncols=True,
             leave=False)
  # time_s counts on from the resumed step's record: the loop's wall-clock across resumes.
  t0, last_saved = time.time() - logged_seconds(metrics_path, start), (start or None)
  try:
    for step in range(start, steps):
      state, metrics = step_fn(state, *batches(step))
      done = step + 1
      if done % cadence.log_every == 0 or done == steps:
        check_finite(state.nonfinite_step, name, checkpoint_dir, last_saved, advice)
        record = dict(step=done, time_s=round(time.time() - t0, 3), **to_python(metrics))
        log.write(record)
        bar.set_postfix({label: f"{record[key]:.3f}" for label, key in (postfix or {}).items()})
      if done % cadence.checkpoint_every == 0 or done == steps:
        check_finite(state.nonfinite_step, name, checkpoint_dir, last_saved, advice)
        ckpt.save(done, state)
        last_saved = done
      bar.update(1)
  finally:
    bar.close()
    log.close()
    ckpt.close()
  return state
