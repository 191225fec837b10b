"""Orbax checkpoints of a state pytree, restored into a freshly built template.

The state is saved as the pytree it is (orbax's standard pytree save: every leaf
under its tree path, e.g. ``params.blocks.0.conv.kernel.value``), so a restore
into a template of another structure (a leaf added, removed or renamed) is an
error naming the differing paths, never a silent restore of one leaf into
another of the same shape. Orbax finalizes a checkpoint by an atomic rename, so
a process killed mid-save leaves the previous checkpoints intact. In a
multi-host run every process calls ``save`` (orbax coordinates them and the
primary host writes the metadata).
"""
from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointMismatchError(ValueError):
  """A checkpoint's tree structure differs from the state it is restored into."""


class Checkpointer:
  """Saves and restores one kind of state under ``directory``."""

  def __init__(self, directory: str | Path, *, max_to_keep: int = 2):
    self.directory = Path(directory).absolute()
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state) -> None:
    self.manager.save(int(step), args=ocp.args.StandardSave(state))

  def restore(self, template, step: int | None = None):
    """Restores into the structure (and shardings) of ``template``.

    Raises:
      FileNotFoundError: no checkpoint in the directory.
      CheckpointMismatchError: the saved tree differs from ``template``'s (the
        message lists the paths); the checkpoint belongs to another network or
        another version of the state.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    abstract = jax.tree.map(
        lambda l: jax.ShapeDtypeStruct(np.shape(l), l.dtype, sharding=getattr(l, "sharding", None)),
        template)
    try:
      return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except (ValueError, KeyError, TypeError) as err:   # orbax's words differ across versions
      raise CheckpointMismatchError(
          f"checkpoint {self.directory / str(step)} does not fit the state it is restored into "
          f"(it was written for another network or state layout): {err}. Start this stage in a "
          f"new work dir, or delete {self.directory} to retrain from scratch") from None

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
