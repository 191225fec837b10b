"""Suite-wide settings, applied before JAX is imported by any test module.

Compilation dominates the run time of these small programs on CPU: LLVM's
backend optimizations are turned off (compiles several times faster; the
programs are tiny) and compiled programs are cached on disk, so the
subprocesses of the resume test reuse the parent's compilations.

Shared by every folder: the ``tiny_config`` fixture, and ``tests/`` on ``sys.path`` (this
file's folder, pytest's rootdir-less import mode), so test modules import helpers from
``support`` (``tests/support/``).
"""
import os
import tempfile

_flags = os.environ.get("XLA_FLAGS", "")
if "xla_backend_optimization_level" not in _flags:
  os.environ["XLA_FLAGS"] = (_flags + " --xla_backend_optimization_level=0").strip()
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "dnas_ee_test_jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")

import pytest
from hypothesis import HealthCheck, settings

from support.runs import ROOT, tiny_overrides

# Property tests have no per-example deadline and no too-slow health check: on a loaded
# machine a slow example is not a failure (a test must not depend on the wall clock).
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")


@pytest.fixture
def tiny_config():
  """The digits config reduced to a few seconds per stage (``support.runs.tiny_overrides``)."""
  from dnas_ee.config import apply_overrides, load_config_file
  config = load_config_file(ROOT / "experiments" / "configs" / "digits.py")
  apply_overrides(config, tiny_overrides())
  return config
