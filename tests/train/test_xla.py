"""dnas_ee.train.xla: the training steps compile without XLA:CPU's YNNPACK fusions, a user's
setting wins, and importing dnas-ee initializes no backend. (That the search step with and
without the fusions gives the same numbers at 24/32 bits: tests/train/test_search.py.)"""
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from support.runs import ROOT, subprocess_env
from dnas_ee.train import xla


def _conv_grad(x, w):
  y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return jnp.sum(jax.nn.relu(y) @ jnp.ones((8, 4)))


def _compiled_text(jitted) -> str:
  return jitted.lower(jnp.ones((4, 8, 8, 3)), jnp.ones((3, 3, 3, 8))).compile().as_text()


def test_steps_compile_without_ynn_fusions(monkeypatch):
  monkeypatch.delenv(xla.ENV_VAR, raising=False)
  monkeypatch.setenv("XLA_FLAGS", "")
  default = _compiled_text(jax.jit(jax.grad(_conv_grad, argnums=1)))
  if "__ynn" not in default:
    pytest.skip("this XLA:CPU makes no YNNPACK fusion of a convolution: nothing to turn off")
  ours = xla.jit(jax.grad(_conv_grad, argnums=1))
  assert "__ynn" not in _compiled_text(ours)
  x, w = jnp.ones((4, 8, 8, 3)), jnp.full((3, 3, 3, 8), 0.1)
  assert jnp.allclose(ours(x, w), jax.jit(jax.grad(_conv_grad, argnums=1))(x, w), rtol=1e-5)


def test_the_user_can_keep_ynn_fusions(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "")
  monkeypatch.delenv(xla.ENV_VAR, raising=False)
  assert xla.compiler_options() == {xla.FLAG: ""}
  monkeypatch.setenv(xla.ENV_VAR, "on")
  assert xla.compiler_options() is None
  monkeypatch.delenv(xla.ENV_VAR)
  monkeypatch.setenv("XLA_FLAGS", f"--{xla.FLAG}=default")   # their own XLA flag wins
  assert xla.compiler_options() is None


def test_importing_dnas_ee_initializes_no_backend():
  code = ("import dnas_ee.cli, dnas_ee.pipeline, dnas_ee.train.search, dnas_ee.exits.executor, "
          "dnas_ee.methods.scoring, dnas_ee.train.feature_cache, dnas_ee.stages.inherited\n"
          "from jax._src import xla_bridge\n"
          "assert not xla_bridge._backends, list(xla_bridge._backends)\n")
  result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(1),
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
