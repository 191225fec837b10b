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


@pytest.fixture(scope="session")
def static_run(tmp_path_factory):
  """A trained static network (the tiny digits run, ``method.name=static``): the
  ``init.backbone`` of the trained-backbone tests (one per test process; read only)."""
  from dnas_ee.cli import main
  workdir = tmp_path_factory.mktemp("static") / "S"
  assert main(["run", "--config", "experiments/configs/digits.py", "--workdir", str(workdir),
               "--no-progress", "--config.method.name='static'", *tiny_overrides()]) == 0
  return workdir


@pytest.fixture
def feature_cache_dir(tmp_path, monkeypatch):
  """A private feature cache (``DNAS_EE_FEATURE_CACHE``) for a frozen-backbone test."""
  monkeypatch.setenv("DNAS_EE_FEATURE_CACHE", str(tmp_path / "features"))
  return tmp_path / "features"
