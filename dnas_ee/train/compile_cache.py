"""A persistent XLA compilation cache, so a resumed or repeated run does not compile again.

The search step of a CIFAR-10 supernet takes tens of seconds to minutes to
compile on a CPU; JAX can store each compiled executable on disk, keyed by the
program, the compiler options, the device and the jax/jaxlib versions, and
reload it in a later process.

Where it lives: ``$DNAS_EE_COMPILATION_CACHE`` if set, else
``$XDG_CACHE_HOME/dnas_ee/jax`` (``~/.cache/dnas_ee/jax``). A user who already
set JAX's own ``JAX_COMPILATION_CACHE_DIR`` keeps it.

``report_compilations`` (the CLI turns it on) writes one line per compiled step: how
long it took (tracing, lowering, XLA) and whether the persistent cache served it.

It is safe to delete at any time (``rm -rf ~/.cache/dnas_ee/jax``): a missing or
stale entry only means the next run compiles again. Turn it off with
``DNAS_EE_COMPILATION_CACHE=off`` (or ``0``/``none``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from pathlib import Path
from typing import Callable, Iterable

import jax

ENV_VAR = "DNAS_EE_COMPILATION_CACHE"
# JAX's own threshold: a user (or a test) who set it keeps it.
MIN_COMPILE_TIME_ENV_VAR = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
OFF = ("", "0", "off", "none", "false", "no")


def default_cache_dir() -> Path:
  base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
  return Path(base) / "dnas_ee" / "jax"


def cache_dir_from_env() -> Path | None:
  """The directory the cache should use, or None when it is turned off."""
  value = os.environ.get(ENV_VAR)
  if value is None:
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
      return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    return default_cache_dir()
  if value.strip().lower() in OFF:
    return None
  return Path(value).expanduser()


def enable_compilation_cache(path: str | Path | None = None, *,
                             min_compile_time_s: float | None = None) -> Path | None:
  """Points JAX's persistent compilation cache at ``path`` (default: from the environment).

  Call it once, before the first jitted step is compiled (the CLI does, at start).

  Args:
    path: cache directory; None reads ``$DNAS_EE_COMPILATION_CACHE`` (see the module doc).
    min_compile_time_s: only programs that took at least this long to compile are
      stored (small helper programs are cheaper to recompile than to read back); None:
      ``$JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` where set, else 1 s.

  Returns:
    The cache directory in use, or None if the cache is turned off.
  """
  directory = Path(path).expanduser() if path is not None else cache_dir_from_env()
  if directory is None:
    return None
  try:
    directory.mkdir(parents=True, exist_ok=True)
  except OSError as err:  # a read-only home must not stop a run: it just compiles every time
    print(f"dnas-ee: compilation cache disabled, cannot create {directory}: {err}; "
          f"set {ENV_VAR} to a writable folder")
    return None
  jax.config.update("jax_compilation_cache_dir", str(directory))
  if min_compile_time_s is None:
    min_compile_time_s = float(os.environ.get(MIN_COMPILE_TIME_ENV_VAR, 1.0))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time_s)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return directory


# --- Which compilations happen, how long each part took, and whether the cache served them.

TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
LOWER_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"
XLA_EVENT = "/jax/core/compile/backend_compile_duration"
CACHE_USED_EVENT = "/jax/compilation_cache/compile_requests_use_cache"
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"

# The CLI's jitted steps (their Python function names), as its compile lines name them.
STEP_NAMES = {
    "search_step": "search step",
    "train_step": "training step",
    "eval_logits": "evaluation step",
    "traced": "early-exit segment",   # dnas_ee.exits.executor: one program per segment
    "score_archs": "candidate scoring step",
    "_features": "feature-cache step",
    "exits_taken": "inherited-network evaluation",
}


@dataclasses.dataclass(frozen=True)
class Compilation:
  """One program JAX compiled (or loaded from the persistent cache).

  Attributes:
    name: the jitted Python function's name (``search_step``).
    trace_s: tracing to a jaxpr (Python runs the model code here).
    lower_s: lowering the jaxpr to StableHLO.
    xla_s: XLA's compilation, or loading the executable from the persistent cache on a hit.
    cache: 'hit', 'miss' or 'off' (the persistent cache is not in use).
  """
  name: str
  trace_s: float
  lower_s: float
  xla_s: float
  cache: str

  @property
  def total_s(self) -> float:
    return self.trace_s + self.lower_s + self.xla_s


def compile_line(c: Compilation) -> str:
  """``compiled search step in 12.3 s (persistent cache: hit)``, with the split."""
  what = STEP_NAMES.get(c.name, c.name)
  return (f"compiled {what} in {c.total_s:.1f} s (trace {c.trace_s:.1f} s, lower "
          f"{c.lower_s:.1f} s, XLA {c.xla_s:.1f} s; persistent cache: {c.cache})")


def _function_name(fun_name: str) -> str:
  """``jit(search_step)`` -> ``search_step`` (the lowering and XLA events wrap the name)."""
  return fun_name[4:-1] if fun_name.startswith("jit(") and fun_name.endswith(")") else fun_name


class _CompileEvents:
  """Turns JAX's monitoring events into one ``Compilation`` per compiled program.

  JAX records the tracing, lowering and XLA durations of each program with its
  function name, and the persistent cache's use and hits (without a name) inside the
  XLA span of the program they belong to; a program is complete at its XLA event.
  """

  def __init__(self):
    self.watchers: list[Callable[[Compilation], None]] = []
    self._local = threading.local()   # compilations in other threads do not mix

  def _pending(self) -> dict:
    if not hasattr(self._local, "pending"):
      self._local.pending = dict(durations={}, cache="off")
    return self._local.pending

  def on_duration(self, event: str, duration: float, fun_name: str = "", **_) -> None:
    if event not in (TRACE_EVENT, LOWER_EVENT, XLA_EVENT) or not self.watchers:
      return
    pending, name = self._pending(), _function_name(str(fun_name))
    pending["durations"][(event, name)] = duration
    if event != XLA_EVENT:
      return
    take = lambda e: pending["durations"].pop((e, name), 0.0)
    done = Compilation(name, take(TRACE_EVENT), take(LOWER_EVENT), take(XLA_EVENT),
                       pending["cache"])
    pending["cache"] = "off"
    for watch in list(self.watchers):
      watch(done)

  def on_event(self, event: str, **_) -> None:
    if not self.watchers:
      return
    if event == CACHE_USED_EVENT and _persistent_cache_on():
      self._pending()["cache"] = "miss"
    elif event == CACHE_HIT_EVENT:
      self._pending()["cache"] = "hit"


def _persistent_cache_on() -> bool:
  """Whether compilations go through a persistent cache directory (JAX asks for a key,
  and records the request, even where no directory is set)."""
  return bool(jax.config.jax_compilation_cache_dir) and jax.config.jax_enable_compilation_cache


_EVENTS: _CompileEvents | None = None


def _events() -> _CompileEvents:
  """The process's one listener on JAX's monitoring events (JAX has no public way to
  remove a listener: watchers come and go on this one instead)."""
  global _EVENTS
  if _EVENTS is None:
    _EVENTS = _CompileEvents()
    jax.monitoring.register_event_duration_secs_listener(_EVENTS.on_duration)
    jax.monitoring.register_event_listener(_EVENTS.on_event)
  return _EVENTS


@contextlib.contextmanager
def watch_compilations(callback: Callable[[Compilation], None]):
  """Calls ``callback(Compilation)`` after every program compiled (or loaded from the
  persistent cache) inside the block, in the thread that compiled it."""
  events = _events()
  events.watchers.append(callback)
  try:
    yield
  finally:
    events.watchers.remove(callback)


def report_compilations(write: Callable[[str], None] | None = None,
                        names: Iterable[str] = tuple(STEP_NAMES)) -> None:
  """Writes ``compile_line`` for every compilation of the steps ``names``, from now on
  (the CLI: a user waiting on a compilation sees what it was, how long it took and
  whether the persistent cache served it). ``write`` defaults to ``tqdm.write`` (keeps
  a progress bar intact)."""
  global _REPORTER
  if write is None:
    from tqdm.auto import tqdm
    write = tqdm.write
  wanted = frozenset(names)
  events = _events()
  if _REPORTER in events.watchers:   # called again (main() run twice in one process): one line each
    events.watchers.remove(_REPORTER)
  _REPORTER = lambda c: write(compile_line(c)) if c.name in wanted else None
  events.watchers.append(_REPORTER)


_REPORTER: Callable[[Compilation], None] | None = None
