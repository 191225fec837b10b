"""Data parallelism over every device of the run with ``jax.sharding`` (one host or several).

The batch is split over a 1-D ``data`` mesh axis; the state is replicated. Under
``jit`` the compiler inserts the cross-device reductions (gradients, BatchNorm
statistics), so one step on N devices computes the same numbers as on one.
With ``mesh.multi_host`` set, ``join_hosts`` joins the run's processes
(``jax.distributed.initialize``), the mesh spans every process's devices and each
process feeds its own slice of the global batch (``host_slice``); only process 0
writes the run dir's files, every process takes part in the checkpoints.

How the processes meet: on SLURM, Open MPI and Cloud TPU pods JAX reads it from the
environment those launchers set. Elsewhere (a few boxes, a local test) every process
is given ``JAX_COORDINATOR_ADDRESS=host:port`` (process 0's address and a free port),
``DNAS_EE_NUM_PROCESSES`` and its own ``DNAS_EE_PROCESS_ID`` (``docs/cluster.md``).
"""
from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"   # read by jax.distributed.initialize itself
NUM_PROCESSES_ENV = "DNAS_EE_NUM_PROCESSES"
PROCESS_ID_ENV = "DNAS_EE_PROCESS_ID"


def distributed_args(environ=None) -> dict:
  """``jax.distributed.initialize`` arguments from ``DNAS_EE_NUM_PROCESSES`` and
  ``DNAS_EE_PROCESS_ID`` (with ``JAX_COORDINATOR_ADDRESS``); ``{}`` when neither is set
  (JAX then detects SLURM, Open MPI or a TPU pod itself).

  Raises:
    ValueError: one of the three is set without the others, or is not a number.
  """
  environ = os.environ if environ is None else environ
  names = (COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV)
  if not (environ.get(NUM_PROCESSES_ENV) or environ.get(PROCESS_ID_ENV)):
    return {}
  missing = [n for n in names if not environ.get(n)]
  if missing:
    raise ValueError(f"a multi-host run outside SLURM, Open MPI or a TPU pod needs all of "
                     f"{', '.join(names)}; {', '.join(missing)} not set")
  try:
    num, pid = int(environ[NUM_PROCESSES_ENV]), int(environ[PROCESS_ID_ENV])
  except ValueError:
    raise ValueError(f"{NUM_PROCESSES_ENV} and {PROCESS_ID_ENV} must be integers, got "
                     f"{environ[NUM_PROCESSES_ENV]!r} and {environ[PROCESS_ID_ENV]!r}") from None
  return dict(coordinator_address=environ[COORDINATOR_ENV], num_processes=num, process_id=pid,
              cluster_detection_method="deactivate")


def join_hosts() -> None:
  """Joins this process to the run's other processes, once (``jax.distributed.initialize``
  with ``distributed_args``). Call it before any JAX computation: the CLI does, first
  thing, when ``mesh.multi_host`` is set.

  Raises:
    RuntimeError: JAX already computed something in this process (the message says
      where to call this instead).
  """
  if jax.distributed.is_initialized():
    return
  try:
    jax.distributed.initialize(**distributed_args())
  except RuntimeError as err:
    if "must be called before" not in str(err):
      raise
    raise RuntimeError("mesh.multi_host: JAX computed something before the processes were "
                       "joined; call dnas_ee.train.parallel.join_hosts() first thing (the "
                       "dnas-ee CLI does)") from None


def make_mesh(multi_host: bool = False) -> Mesh:
  """A 1-D ``data`` mesh over every device of the run (of every process if ``multi_host``)."""
  if multi_host:
    join_hosts()
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
  meet_processes("replicate")   # device_put checks the tree is equal on every process
  return jax.device_put(tree, replicated(mesh))


# How long a process waits for the others at a meeting point: only a hang reaches it.
MEETING_TIMEOUT_S = 3600
_meetings = [0]


def meet_processes(name: str, timeout_s: int = MEETING_TIMEOUT_S) -> None:
  """Waits until every process of a multi-process run reaches this point (a barrier of
  JAX's coordination service; nothing on one process).

  Why: CPU collectives (gloo) give a peer 30 s to reach a first collective, and a process
  that is still compiling or loading a program on a busy machine takes longer (CI saw
  ``GetKeyValue() timed out``). Meeting here first, with a long timeout, leaves the
  collective only the skew after the meeting. Every process calls this in the same order,
  so the n-th meeting has the same name everywhere.
  """
  if jax.process_count() == 1:
    return
  from jax._src import distributed   # the client orbax's barriers use too
  _meetings[0] += 1
  distributed.global_state.client.wait_at_barrier(f"dnas_ee/{name}/{_meetings[0]}",
                                                  timeout_s * 1000)
