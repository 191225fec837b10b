"""Sweep members as Ray tasks (``dnas-ee sweep --executor ray [--address ADDR]``).

Ray schedules; this module only says what depends on what. Each member runs as two
tasks split at its retraining, each with the member's declared resources
(``Resources``: CPUs and GPUs per member). The trainings members share
(``dnas_ee.stages.shared_training``) are tasks of their own, upstream of the members
that copy them, so none runs twice and none is read before it exists:

- the search of each search config, before the first part of every member that shares
  it (one task per key of ``shared_training.search_inputs``, known from the config);
- the static backbone of each retraining config and genotype backbone, before the
  retraining of every member that needs it: its key depends on the derived genotype,
  so the first part of a member returns it and the driver submits the training (once
  per key) and the member's second part then.

A member that fails does not stop the others (its dependents fail with it, named);
``run_on_ray`` raises ``SweepError`` naming the failed members once every task has
ended. Every task writes its output to ``WORKDIR/logs/<member dir or shared dir>.log``
and shows in the Ray dashboard under its member's name. The driver prints each state
change (pending, running, done, failed with the error and the log). Run dirs and the
shared dir must be on a path every worker sees (``docs/cluster.md``). ``ray`` is
imported only here, when this executor is asked for (``pip install 'dnas-ee[cluster]'``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
import traceback
from pathlib import Path

from dnas_ee.errors import SweepError

INSTALL = "--executor ray needs Ray, an optional extra: pip install 'dnas-ee[cluster]'"
LOGS = "logs"
# Environment variables the driver hands to every task (the numerics and the compile
# cache then follow the driver's settings, as with the local executor).
FORWARDED_ENV = ("XLA_FLAGS", "JAX_", "DNAS_EE_")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Resources:
  """What one member's task asks Ray for (``ray.remote``'s ``num_cpus``/``num_gpus``).

  Fractions share a device: ``gpus=0.5`` runs two members per GPU (each task's JAX
  then allocates GPU memory as it goes rather than 75% up front).
  """
  cpus: float = 1.0
  gpus: float = 0.0

  def __post_init__(self):
    for name in ("cpus", "gpus"):
      value = getattr(self, name)
      if not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"resources: {name}={value!r} must be a number >= 0 per member")

  def options(self) -> dict:
    return dict(num_cpus=self.cpus, num_gpus=self.gpus)


def import_ray():
  """The ``ray`` module, or ``SweepError`` saying in one line how to install it."""
  try:
    import ray
  except ImportError:
    raise SweepError(INSTALL) from None
  return ray


def search_key(config) -> str | None:
  """The key of the shared search a member copies (None: its method trains no supernet)."""
  from dnas_ee.methods.stage import trains_supernet
  from dnas_ee.stages import shared_training as shared
  return shared.training_key(shared.search_inputs(config)) if trains_supernet(config) else None


def static_key(config, run_dir) -> str:
  """The key of the shared static-backbone training of a member whose genotype is derived."""
  from dnas_ee.space.genotype import Genotype
  from dnas_ee.stages import shared_training as shared
  from dnas_ee.stages.run_dir import network_space
  space = network_space(Genotype.load(Path(run_dir) / "genotype.json"), "static")
  return shared.training_key(shared.training_inputs(config, space))


# --- The task bodies (run in Ray workers) ---------------------------------------------

@contextlib.contextmanager
def _task(log_path, board, label, what: str):
  """Reports ``label`` running ``what``, sends the task's prints and errors to ``log_path``."""
  from dnas_ee.train.compile_cache import enable_compilation_cache
  if board is not None:
    try:
      board.put((label, "running", f": {what}"))
    except Exception:   # a lost progress board (e.g. its actor killed) never fails a member
      pass
  log_path = Path(log_path)
  log_path.parent.mkdir(parents=True, exist_ok=True)
  with open(log_path, "a", buffering=1) as f, contextlib.redirect_stdout(f), \
       contextlib.redirect_stderr(f):
    print(f"--- {label}: {time.strftime('%Y-%m-%d %H:%M:%S')} on {socket.gethostname()}, "
          f"pid {os.getpid()}")
    enable_compilation_cache()
    try:
      yield
    except BaseException:
      traceback.print_exc()
      raise
    print(f"--- {label}: done {time.strftime('%Y-%m-%d %H:%M:%S')}")


def run_stages(log_path, board, label, config, run_dir, stages, shared_dir,
               with_static_key: bool, *upstream):
  """``stages`` of one member (``pipeline.run``); returns the key of its static-backbone
  training when ``with_static_key`` (its retraining is another task). ``upstream``: the
  results of the shared trainings it copies (unused: Ray runs it after them)."""
  from dnas_ee import pipeline
  with _task(log_path, board, label, ", ".join(stages)):
    pipeline.run(config, run_dir, progress=False, stages=tuple(stages), shared_dir=shared_dir)
    return static_key(config, run_dir) if with_static_key else None


def train_static(log_path, board, label, config, run_dir, shared_dir):
  """The shared static-backbone training of ``run_dir``'s member (copied there too)."""
  from dnas_ee import pipeline
  with _task(log_path, board, label, "retrain the static backbone"):
    pipeline.retrain(config, run_dir, progress=False, networks=("static",), shared_dir=shared_dir)


# --- The driver ------------------------------------------------------------------------

def _forwarded_env(resources: Resources) -> dict:
  env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
  if 0 < resources.gpus < 1:
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  return env


def _one_line(err) -> str:
  cause = getattr(err, "cause", None) or err
  text = str(cause).strip().splitlines()
  return f"{type(cause).__name__}: {text[0] if text else ''}"


@dataclasses.dataclass(frozen=True)
class _Submitted:
  kind: str            # "search" or "retrain" (shared), "head" or "tail" (a member's part)
  label: str           # the member's name, or "shared <kind> <key>"
  log: Path
  member: object = None


class _Driver:
  """Submits the tasks as their inputs become known and reports every state change."""

  def __init__(self, ray, members, workdir: Path, shared_dir: Path, stages, resources, log):
    from ray.util.queue import Queue
    self.ray, self.members, self.log = ray, members, log
    self.workdir, self.shared_dir = workdir, str(shared_dir)
    cut = stages.index("retrain") if "retrain" in stages else len(stages)
    self.head, self.tail = tuple(stages[:cut]), tuple(stages[cut:])
    # Tasks say when they start; restarted if killed (e.g. by Ray's out-of-memory monitor).
    self.board = Queue(actor_options=dict(num_cpus=0, max_restarts=-1))
    options = dict(resources.options(), runtime_env=dict(env_vars=_forwarded_env(resources)))
    self.remote = {fn: ray.remote(**options)(fn) for fn in (run_stages, train_static)}
    self.pending: dict = {}            # ObjectRef -> _Submitted
    self.shared: dict = {}             # (kind, key) -> (ObjectRef, label)
    self.needs: dict = {}              # member name -> labels of the shared tasks it copies
    self.failed_shared: dict = {}      # label -> one-line error
    self.failed: dict = {}             # member name -> message
    self.done: list = []
    self.board_lost = False

  def _say(self, state: str, label: str, detail: str = "") -> None:
    self.log(f"  {state:<8} {label}{detail}")

  def _submit(self, fn, task: _Submitted, *args):
    ref = self.remote[fn].options(name=task.label).remote(str(task.log), self.board, task.label,
                                                          *args)
    self.pending[ref] = task
    return ref

  def _shared_task(self, kind: str, key: str, member):
    """The shared training ``kind`` (search, retrain) of ``key``, submitted once, with
    ``member``'s run dir as the first to copy it."""
    if (kind, key) not in self.shared:
      task = _Submitted(kind, f"shared {kind} {key}",
                        self.workdir / LOGS / f"shared-{kind}-{key}.log")
      run_dir = str(self.workdir / member.dir_name)
      if kind == "search":
        ref = self._submit(run_stages, task, member.config, run_dir, ("search",), self.shared_dir,
                           False)
      else:
        ref = self._submit(train_static, task, member.config, run_dir, self.shared_dir)
      self.shared[(kind, key)] = (ref, task.label)
      self._say("pending", task.label, f"  (log: {task.log})")
    ref, label = self.shared[(kind, key)]
    self.needs.setdefault(member.name, []).append(label)
    return ref

  def _member_part(self, member, kind: str, upstream=()) -> None:
    task = _Submitted(kind, member.name, self.workdir / LOGS / f"{member.dir_name}.log", member)
    stages = self.head if kind == "head" else self.tail
    self._submit(run_stages, task, member.config, str(self.workdir / member.dir_name), stages,
                 self.shared_dir, kind == "head" and bool(self.tail), *upstream)

  def start(self) -> None:
    for member in self.members:
      key = search_key(member.config) if "search" in self.head else None
      upstream = [self._shared_task("search", key, member)] if key else []
      self._member_part(member, "head", upstream)
      self._say("pending", member.name,
                f"  (log: {self.workdir / LOGS / f'{member.dir_name}.log'})")

  def _finished(self, task: _Submitted, value) -> None:
    if task.member is None:
      self._say("done", task.label)
    elif task.kind == "head" and self.tail:   # value: the key of its static backbone
      self._member_part(task.member, "tail", [self._shared_task("retrain", value, task.member)])
    else:
      self.done.append(task.label)
      self._say("done", task.label, f"  ({self.workdir / task.member.dir_name})")

  def _failed(self, task: _Submitted, err) -> None:
    if task.member is None:
      self.failed_shared[task.label] = message = _one_line(err)
    else:
      broken = [l for l in self.needs.get(task.label, []) if l in self.failed_shared]
      message = f"needs {broken[0]}, which failed" if broken else _one_line(err)
      self.failed[task.label] = message
    self._say("failed", task.label, f": {message}  (log: {task.log})")

  def _drain_board(self) -> None:
    from ray.util.queue import Empty
    while True:
      try:
        label, state, detail = self.board.get_nowait()
      except Empty:
        return
      except self.ray.exceptions.RayError as err:   # only the running states are lost
        if not self.board_lost:
          self.log(f"  (progress board unavailable, running states not shown: {_one_line(err)})")
        self.board_lost = True
        return
      self._say(state, label, detail)

  def wait(self) -> None:
    while self.pending:
      ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=1.0)
      self._drain_board()
      for ref in ready:
        task = self.pending.pop(ref)
        try:
          value = self.ray.get(ref)
        except self.ray.exceptions.RayError as err:
          self._failed(task, err)
        else:
          self._finished(task, value)


def run_on_ray(members, workdir, shared_dir, stages, *, address=None,
               resources: Resources = Resources(), log=print) -> None:
  """Runs ``members`` (unfinished ones) as Ray tasks, each with ``resources``.

  Connects to the Ray cluster at ``address`` (``"auto"``: the one ``ray start`` began on
  this machine; None: ``$RAY_ADDRESS``, else a Ray instance started here for the sweep),
  or uses the Ray this process already initialized.

  Raises:
    SweepError: Ray is not installed, or members failed (named, with their errors;
      the other members ran to the end).
  """
  ray = import_ray()
  if not members:   # every member finished: no cluster needed
    return
  workdir, shared_dir = Path(workdir).absolute(), Path(shared_dir).absolute()
  started = not ray.is_initialized()
  if started:
    context = ray.init(address=address)
    url = getattr(context, "dashboard_url", None)
    log(f"ray: {ray.cluster_resources().get('CPU', 0):g} CPUs, "
        f"{ray.cluster_resources().get('GPU', 0):g} GPUs"
        + (f"; dashboard http://{url}" if url else "; no dashboard (pip install 'ray[default]')"))
  try:
    driver = _Driver(ray, members, workdir, shared_dir, tuple(stages), resources, log)
    log(f"ray: {len(members)} members to run, {resources.cpus:g} CPU and "
        f"{resources.gpus:g} GPU each; task logs in {workdir / LOGS}")
    driver.start()
    driver.wait()
  finally:
    if started:
      ray.shutdown()
  if driver.failed:
    raise SweepError(f"{len(driver.failed)} of {len(members)} members failed: "
                     + "; ".join(f"{name} ({why})" for name, why in driver.failed.items()))
