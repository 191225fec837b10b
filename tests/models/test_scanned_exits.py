"""Exit branches of one structure run as one scan (``Supernet(scan_exits=True)``): the same
loss, gradients and BatchNorm statistics as the exits run one by one, to float rounding."""
import dataclasses
import types

import jax
import numpy as np
import pytest
from flax import nnx

from dnas_ee.config import apply_overrides, load_config_file
from dnas_ee.models.supernet import exit_groups
from dnas_ee.train.search import batch_loss, split_model
from dnas_ee.train.setup import prepare_search, search_batches
from support.runs import ROOT, tiny_overrides

# Three blocks in the first stage: the exits after blocks 1 and 2 share a structure (one
# scan of two branches), the exit after block 4 is alone (run as before).
SHARED_STAGE = ["--config.backbone.options.blocks_per_stage=(3, 1, 1)",
                "--config.space.exit_positions=(1, 2, 4)"]


def _synthetic(n=64):
  rng = np.random.default_rng(0)
  split = lambda: types.SimpleNamespace(
      images=rng.standard_normal((n, 8, 8, 1)).astype(np.float32),
      labels=rng.integers(0, 10, n).astype(np.int32))
  return types.SimpleNamespace(train=split(), val=split(), calib=split(), test=split(),
                               image_shape=(8, 8, 1), num_classes=10, name="synthetic")


def _config(mode):
  config = load_config_file(ROOT / "experiments" / "configs" / "digits.py")
  apply_overrides(config, tiny_overrides() + SHARED_STAGE + [
      f"--config.search.mixture_mode={mode}"])
  return config


def test_exits_of_one_stage_form_one_group():
  run = prepare_search(_config("softmax"), data=_synthetic())
  assert exit_groups(run.space) == ((0, 1), (2,))


@pytest.mark.parametrize("mode", ["softmax", "sampled"])
def test_scanned_exits_give_the_unrolled_loss_and_gradients(mode):
  config = _config(mode)
  run = prepare_search(config, data=_synthetic())
  model = nnx.merge(run.setup.graphdef, run.state.params, run.state.arch, run.state.stats)
  assert not model.scan_exits   # the default: every exit branch on its own (the reference)
  model.scan_exits = True       # the same network, the exits of one stage as one scan
  scanned = dataclasses.replace(run.setup, graphdef=split_model(model)[0])
  reference = run.setup
  (xt, yt), (xv, yv) = search_batches(run, config, 0)
  state, rng, step = run.state, jax.random.key(3), jax.numpy.asarray(10)   # past the warm-up

  def loss_and_grads(setup, phase, images, labels):
    fn = lambda p, a: batch_loss(setup, run.ctx, p, a, state.stats, images, labels, rng, step,
                                 phase=phase)
    return jax.jit(jax.value_and_grad(fn, argnums=(0, 1), has_aux=True))(state.params, state.arch)

  for phase, images, labels in (("arch", xv, yv), ("weights", xt, yt)):
    got = loss_and_grads(scanned, phase, images, labels)
    want = loss_and_grads(reference, phase, images, labels)
    # (loss, (BatchNorm statistics, metrics)), (weight gradients, architecture gradients)
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=2e-4, atol=1e-6), got, want)
