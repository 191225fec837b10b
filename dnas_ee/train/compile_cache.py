"""A persistent XLA compilation cache, so a resumed or repeated run does not compile again.

The search step of a CIFAR-10 supernet takes tens of seconds to minutes to
compile on a CPU; JAX can store each compiled executable on disk, keyed by the
program, the compiler options, the device and the jax/jaxlib versions, and
reload it in a later process.

Where it lives: ``$DNAS_EE_COMPILATION_CACHE`` if set, else
``$XDG_CACHE_HOME/dnas_ee/jax`` (``~/.cache/dnas_ee/jax``). A user who already
set JAX's own ``JAX_COMPILATION_CACHE_DIR`` keeps it.

It is safe to delete at any time (``rm -rf ~/.cache/dnas_ee/jax``): a missing or
stale entry only means the next run compiles again. Turn it off with
``DNAS_EE_COMPILATION_CACHE=off`` (or ``0``/``none``).
"""
from __future__ import annotations

import os
from pathlib import Path

import jax

ENV_VAR = "DNAS_EE_COMPILATION_CACHE"
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
                             min_compile_time_s: float = 1.0) -> Path | None:
  """Points JAX's persistent compilation cache at ``path`` (default: from the environment).

  Call it once, before the first jitted step is compiled (the CLI does, at start).

  Args:
    path: cache directory; None reads ``$DNAS_EE_COMPILATION_CACHE`` (see the module doc).
    min_compile_time_s: only programs that took at least this long to compile are
      stored (small helper programs are cheaper to recompile than to read back).

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
  jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return directory
