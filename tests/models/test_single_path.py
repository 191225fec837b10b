"""The supernet on one sampled path computes the mixture at the same one-hot."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dnas_ee.models.supernet import Supernet, relaxed_architecture, sampled_architecture
from dnas_ee.relax import Relaxation
from dnas_ee.space.backbones import build_backbone
from dnas_ee.space.space import make_search_space


def test_single_path_forward_equals_the_mixture_at_the_same_one_hot():
  backbone = build_backbone("resnet_cifar", (8, 8, 1), 10, stage_widths=(8, 16, 16),
                            blocks_per_stage=(1, 1, 1), stem_width=8)
  space = make_search_space(backbone, exit_positions=(1, 2), branch_depth=2,
                            branch_ops=("conv3_s2_x2", "dwsep3_s1_x2", "maxpool2_s2", "identity"),
                            branch_resolutions=(4, 2), bits=(2, 4, 8), edge_bits=8)
  model = Supernet(space, rngs=nnx.Rngs(0))
  relax = Relaxation(op_temperature=1.0)
  probs = relaxed_architecture(model, relax)
  path = sampled_architecture(model, probs, relax, jax.random.key(3), ops=True)
  images = jnp.asarray(np.random.default_rng(0).normal(size=(4, 8, 8, 1)), jnp.float32)
  switched = model(images, path, train=False)
  mixed = model(images, dataclasses.replace(path, single_path=False, sampled_bits=False),
                train=False)
  for a, b in zip(switched, mixed):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
  # The path is one-hot in value; its gradient reaches every logit.
  ops = np.asarray(path.ops)   # hard + soft - stop_gradient(soft): one-hot to float rounding
  np.testing.assert_allclose(ops, np.round(ops), atol=1e-6)
  assert set(np.unique(np.round(ops))) <= {0.0, 1.0}
