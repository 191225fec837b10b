"""The supernet at a one-hot architecture computes the network rebuilt from genotype.json."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dnas_ee.models.inherit import inherit_weights
from dnas_ee.models.supernet import Supernet, relaxed_architecture
from dnas_ee.relax import Relaxation
from dnas_ee.space.backbones import build_backbone
from dnas_ee.space.genotype import Genotype, derive_genotype
from dnas_ee.space.space import make_search_space

OPS = ("conv3_s2_x2", "dwsep3_s1_x2", "conv3_s1_x1", "maxpool2_s2", "identity")
HARD = Relaxation(hard=True)


def _space():
  backbone = build_backbone("resnet_cifar", (8, 8, 1), 10, stage_widths=(8, 16, 16),
                            blocks_per_stage=(1, 1, 1), stem_width=8)
  return make_search_space(backbone, exit_positions=(1, 2), branch_ops=OPS, branch_depth=2,
                           branch_resolutions=(4, 2), bits=(2, 4, 8), edge_bits=8)


def _zero_pad_back(supernet: Supernet, derived: Supernet, genotype: Genotype) -> None:
  """Writes the derived weights back into the supernet, zero beyond the derived shapes.

  The supernet's rows for input channels the chosen ops leave at zero change no
  product but can change a per-channel quantization scale (see
  dnas_ee.models.inherit); with them at zero the two networks must agree exactly.
  """
  positions = [b.position for b in supernet.space.branches]
  for j, gene in enumerate(genotype.exits):
    i = positions.index(gene.position)
    spec = supernet.space.branches[i]
    pairs = [(supernet.branches[i].slots[s][spec.slot_ops[s].index(op)],
              derived.branches[j].slots[s][0]) for s, op in enumerate(gene.ops)]
    (width, classifier), = derived.branches[j].classifiers().items()
    pairs.append((supernet.branches[i].classifiers()[width], classifier))
    for src, dst in pairs:
      padded = jax.tree.map(
          lambda big, small: jnp.zeros_like(big).at[tuple(slice(0, n) for n in small.shape)]
          .set(small) if big.shape != small.shape else small,
          nnx.state(src), nnx.state(dst))
      nnx.update(src, padded)


@pytest.mark.parametrize("seed", [0, 1])
def test_supernet_at_one_hot_equals_the_network_rebuilt_from_the_genotype(seed):
  space = _space()
  supernet = Supernet(space, rngs=nnx.Rngs(seed))
  rng = np.random.default_rng(seed)
  # A random architecture with at least one exit kept.
  supernet.exit_logits[...] = jnp.asarray([1.0, rng.choice([-1.0, 1.0])])
  supernet.op_logits[...] = jnp.asarray(rng.normal(size=supernet.op_logits[...].shape))
  supernet.backbone_bit_logits[...] = jnp.asarray(
      rng.normal(size=supernet.backbone_bit_logits[...].shape))
  supernet.branch_bit_logits[...] = jnp.asarray(
      rng.normal(size=supernet.branch_bit_logits[...].shape))
  genotype = derive_genotype(space, supernet.exit_logits[...], supernet.op_logits[...],
                             supernet.backbone_bit_logits[...], supernet.branch_bit_logits[...])
  genotype = Genotype.from_json(genotype.to_json())        # through the JSON, as a run does
  derived = inherit_weights(supernet, genotype)
  _zero_pad_back(supernet, derived, genotype)

  images = jnp.asarray(rng.normal(size=(16, 8, 8, 1)), jnp.float32)
  kept = [i for i, b in enumerate(space.branches)
          if b.position in [g.position for g in genotype.exits]]
  for train in (False, True):
    full = supernet(images, relaxed_architecture(supernet, HARD), train=train)
    small = derived(images, relaxed_architecture(derived, HARD), train=train)
    expected = [full[i] for i in kept] + [full[-1]]
    assert len(small) == len(expected)
    for a, b in zip(expected, small):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_inheriting_an_op_outside_the_space_is_an_error():
  space = _space()
  supernet = Supernet(space, rngs=nnx.Rngs(0))
  genotype = derive_genotype(space, [1.0, -1.0], np.zeros((2, 2, len(OPS))), np.zeros((3, 3)),
                             np.zeros((2, 3)))
  bad = Genotype.from_json({**genotype.to_json(), "exits": [
      {**genotype.to_json()["exits"][0], "ops": ["conv5_s2_x1", "identity"]}]})
  with pytest.raises(ValueError, match="conv5_s2_x1.*not a candidate"):
    inherit_weights(supernet, bad)
