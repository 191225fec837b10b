"""A space with no exit positions (a bits-only search): the supernet builds, runs, and its
state checkpoints (no zero-size variable, which orbax cannot save)."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dnas_ee.checkpoint import Checkpointer
from dnas_ee.models.supernet import Supernet, relaxed_architecture
from dnas_ee.relax import Relaxation
from dnas_ee.space.backbones import build_backbone
from dnas_ee.space.space import make_search_space


def test_a_supernet_without_exit_positions_searches_bits_and_checkpoints(tmp_path):
  backbone = build_backbone("resnet_cifar", (8, 8, 1), 10, stage_widths=(8, 16, 16),
                            blocks_per_stage=(1, 1, 1), stem_width=8)
  space = make_search_space(backbone, exit_positions=(), branch_ops=("conv3_s2_x1",),
                            branch_depth=1, branch_resolutions=(4,), bits=(2, 4, 8))
  model = Supernet(space, rngs=nnx.Rngs(0), threshold_init=0.9)
  probs = relaxed_architecture(model, Relaxation())
  assert probs.gates.shape == (0,) and probs.thresholds.shape == (0,)
  logits = model(jnp.zeros((2, 8, 8, 1)), probs, train=False)
  assert len(logits) == 1 and logits[0].shape == (2, 10)
  state = nnx.state(model)
  assert all(np.size(x) for x in jax.tree.leaves(state))
  ckpt = Checkpointer(tmp_path / "ckpt")
  ckpt.save(0, state)
  ckpt.wait()
  restored = ckpt.restore(state)
  np.testing.assert_array_equal(restored["backbone_bit_logits"][...],
                                state["backbone_bit_logits"][...])
  ckpt.close()
