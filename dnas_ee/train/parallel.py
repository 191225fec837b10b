"""Data parallelism over every local device with ``jax.sharding`` (multi-host ready).

The batch is split over a 1-D ``data`` mesh axis; the state is replicated. Under
``jit`` the compiler inserts the cross-device reductions (gradients, BatchNorm
statistics), so one step on N devices computes the same numbers as on one.
With ``mesh.multi_host`` set, ``jax.distributed.initialize()`` joins the hosts
and each host feeds its own slice of the global batch.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

_initialized = False


def make_mesh(multi_host: bool = False) -> Mesh:
  global _initialized
  if multi_host and not _initialized:
    jax.distributed.initialize()
    _initialized = True
  return Mesh(np.array(jax.devices()), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec("data"))


def check_batch_size(batch_size: int, mesh: Mesh, key: str) -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f"{key}={batch_size} is not divisible by the {n} devices; "
                     f"use a multiple of {n}")


def host_slice(global_batch: int) -> slice:
  """The rows of the global batch this host feeds."""
  per_host = global_batch // jax.process_count()
  start = jax.process_index() * per_host
  return slice(start, start + per_host)


def shard_batch(mesh: Mesh, *arrays: np.ndarray):
  """Places host arrays (this host's rows of the global batch) on the mesh."""
  sharding = batch_sharding(mesh)
  return tuple(jax.make_array_from_process_local_data(sharding, a) for a in arrays)


def replicate(mesh: Mesh, tree):
  return jax.device_put(tree, replicated(mesh))
