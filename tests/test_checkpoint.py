"""Checkpoints keep the state's tree structure: a restore into another structure is an
error, and leaves restore by name."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from dnas_ee.checkpoint import CheckpointMismatchError, Checkpointer


def _params(model) -> nnx.State:
  return nnx.state(model, nnx.Param)


def test_restore_into_another_structure_is_an_error(tmp_path):
  ckpt = Checkpointer(tmp_path / "ckpt")
  ckpt.save(1, _params(nnx.Linear(3, 4, rngs=nnx.Rngs(0))))
  ckpt.wait()
  saved = _params(nnx.Linear(3, 4, rngs=nnx.Rngs(0)))
  restored = ckpt.restore(_params(nnx.Linear(3, 4, rngs=nnx.Rngs(1))))
  assert jax.tree.structure(restored) == jax.tree.structure(saved)
  assert all(jnp.array_equal(a, b) for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(saved)))
  with pytest.raises(CheckpointMismatchError, match="does not fit"):
    ckpt.restore(_params(nnx.Linear(3, 4, use_bias=False, rngs=nnx.Rngs(0))))


def test_same_shaped_leaves_restore_by_name_not_by_position(tmp_path):
  """Two same-shaped leaves keep their names: a renamed one is an error, and
  reordering the template does not swap values."""
  ckpt = Checkpointer(tmp_path / "ckpt")
  ckpt.save(1, {"a": jnp.zeros(3), "b": jnp.ones(3)})
  ckpt.wait()
  with pytest.raises(CheckpointMismatchError):
    ckpt.restore({"a": jnp.zeros(3), "c": jnp.zeros(3)})
  restored = ckpt.restore({"b": jnp.zeros(3), "a": jnp.zeros(3)})
  assert float(restored["a"].sum()) == 0.0 and float(restored["b"].sum()) == 3.0
