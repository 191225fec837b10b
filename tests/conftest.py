"""Suite-wide settings, applied before JAX is imported by any test module.

Compilation dominates the run time of these small programs on CPU: LLVM's
backend optimizations are turned off (compiles several times faster; the
programs are tiny) and compiled programs are cached on disk, so the
subprocesses of the resume test reuse the parent's compilations.
"""
import os
import tempfile

_flags = os.environ.get("XLA_FLAGS", "")
if "xla_backend_optimization_level" not in _flags:
  os.environ["XLA_FLAGS"] = (_flags + " --xla_backend_optimization_level=0").strip()
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "dnas_ee_test_jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
