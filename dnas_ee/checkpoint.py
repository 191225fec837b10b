"""Orbax checkpoints of any state pytree, restored into a freshly built template.

Leaves are saved as a flat, ordered dict so that any pytree (NNX states, optax
states, dataclasses) round-trips; the template supplies the structure on restore.
Orbax finalizes a checkpoint by an atomic rename, so a process killed mid-save
leaves the previous checkpoints intact.
"""
from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp


def _as_dict(tree) -> dict:
  return {f"{i:05d}": leaf for i, leaf in enumerate(jax.tree_util.tree_leaves(tree))}


class Checkpointer:
  """Saves and restores one kind of state under ``directory``."""

  def __init__(self, directory: str | Path, *, max_to_keep: int = 2):
    self.directory = Path(directory).absolute()
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state) -> None:
    self.manager.save(int(step), args=ocp.args.StandardSave(_as_dict(state)))

  def restore(self, template, step: int | None = None):
    """Restores into the structure (and shardings) of ``template``."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    leaves, treedef = jax.tree_util.tree_flatten(template)
    abstract = {f"{i:05d}": jax.ShapeDtypeStruct(np.shape(l), l.dtype,
                                                 sharding=getattr(l, "sharding", None))
                for i, l in enumerate(leaves)}
    restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    return jax.tree_util.tree_unflatten(treedef, [restored[k] for k in sorted(restored)])

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
