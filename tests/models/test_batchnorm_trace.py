"""The supernet's BatchNorm: flax's numbers, without flax's quadratic trace.

``dnas_ee.models.layers.BatchNorm`` overrides only the training-mode call of
``nnx.BatchNorm`` (its statistics update was quadratic to trace). The program it
traces must be the one flax traces, equation for equation, so the search step
computes the same bits and compiles the same program.
"""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from support.runs import tiny_overrides
from dnas_ee.models.layers import BatchNorm, batch_norm


def _train_step(cls, x):
  """(jaxpr text, (loss, input gradient, new state)) of a training-mode call."""
  bn = cls(8, momentum=0.9, epsilon=1e-5, rngs=nnx.Rngs(0))
  bn.scale[...] = jnp.arange(8.0) + 0.5
  bn.bias[...] = jnp.arange(8.0) * 0.1
  graphdef, state = nnx.split(bn)

  def loss(x, state):
    model = nnx.merge(graphdef, state, copy=True)
    return jnp.sum(model(x, use_running_average=False) ** 3), nnx.state(model)

  step = jax.value_and_grad(loss, has_aux=True)
  (value, new_state), grad = jax.jit(step)(x, state)
  return str(jax.make_jaxpr(step)(x, state)), (value, grad, new_state)


def test_training_call_is_flax_equation_for_equation():
  x = jax.random.normal(jax.random.key(0), (16, 4, 4, 8)) * 3 + 1
  ours_jaxpr, ours = _train_step(BatchNorm, x)
  flax_jaxpr, theirs = _train_step(nnx.BatchNorm, x)
  assert ours_jaxpr == flax_jaxpr
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_inference_call_and_variables_are_flax_ones():
  ours = batch_norm(8, nnx.Rngs(0))
  theirs = nnx.BatchNorm(8, momentum=0.9, epsilon=1e-5, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (4, 2, 2, 8))
  ours.mean[...] = theirs.mean[...] = jnp.linspace(-1, 1, 8)
  ours.var[...] = theirs.var[...] = jnp.linspace(0.5, 2, 8)
  np.testing.assert_array_equal(np.asarray(ours(x, use_running_average=True)),
                                np.asarray(theirs(x, use_running_average=True)))
  # The same variables under the same names and types: checkpoints restore either way.
  assert (jax.tree.map(jnp.shape, nnx.state(ours, nnx.Param, nnx.BatchStat))
          == jax.tree.map(jnp.shape, nnx.state(theirs, nnx.Param, nnx.BatchStat)))


@pytest.mark.parametrize("mode", ["softmax", "sampled"])
def test_search_step_traces_flax_program(mode, monkeypatch):
  """The whole search step (tiny digits space) traces to the jaxpr flax's BatchNorm gives."""
  from dnas_ee import pipeline
  from dnas_ee.config import apply_overrides, load_config_file
  from dnas_ee.train.search import search_step
  config = load_config_file(Path(__file__).resolve().parents[2] / "experiments/configs/digits.py")
  apply_overrides(config, tiny_overrides() + [f"--config.search.mixture_mode={mode}"])
  run = pipeline.prepare_search(config)
  args = pipeline.search_batches(run, config, 0) + (run.ctx,)
  trace = lambda: str(jax.make_jaxpr(lambda s, *a: search_step(s, *a, setup=run.setup))(
      run.state, *args))
  ours = trace()
  monkeypatch.setattr(BatchNorm, "__call__", nnx.BatchNorm.__call__)   # flax's own call
  assert trace() == ours
