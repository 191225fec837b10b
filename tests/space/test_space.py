"""Search space: signatures agree with the traced modules; registry; genotype round trip."""
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dnas_ee.cost import ShapeCosts
from dnas_ee.cost.network import exit_costs
from dnas_ee.models.supernet import Supernet, relaxed_architecture
from dnas_ee.relax import Relaxation
from dnas_ee.space.backbones import build_backbone, registered_backbones
from dnas_ee.space.genotype import ExitGene, Genotype, genotype_space
from dnas_ee.space.ops import parse_op
from dnas_ee.space.space import make_search_space
from dnas_ee.space.trace import trace_ops


@pytest.mark.parametrize("backbone,options,shape,ops", [
    ("resnet_cifar", dict(stage_widths=(8, 16, 32), blocks_per_stage=(1, 2, 1)), (8, 8, 1),
     (("conv3_s2_x2", "dwsep5_s1_x2"), ("identity", "conv5_s2_x1"))),
    ("mobilenetv2_cifar", dict(width_mult=0.25, head_width=64), (32, 32, 3),
     (("dwsep3_s2_x2", "maxpool2_s2"), ("conv3_s1_x1", "avgpool2_s2"))),
])
def test_signature_macs_match_traced_convolutions(backbone, options, shape, ops):
  spec = build_backbone(backbone, shape, 10, **options)
  genotype = Genotype(spec, (ExitGene(1, ops[0], (4, 2), 4), ExitGene(2, ops[1], (4, 2), 8)),
                      (4,) * len(spec.blocks), 8)
  space = genotype_space(genotype)
  model = Supernet(space, rngs=nnx.Rngs(0))
  arch = relaxed_architecture(model, Relaxation(hard=True))
  traced = sum(sig.macs for sig in trace_ops(lambda x: model(x, arch, train=False),
                                                jnp.zeros((1,) + shape)))
  every_layer = exit_costs(space, ShapeCosts())[-1, 0]   # final exit: all branches
  assert traced == every_layer


def test_registries():
  assert {"resnet_cifar", "mobilenetv2_cifar"} <= set(registered_backbones())
  assert parse_op("conv5_s2_x2").expansion == 2
  assert parse_op("maxpool2_s2").preserves_channels
  with pytest.raises(ValueError, match="unknown branch op 'conv3'"):
    parse_op("conv3")
  with pytest.raises(ValueError, match="unknown backbone"):
    build_backbone("vgg", (8, 8, 1), 10)


def test_resnet20_has_nineteen_blocks_worth_of_convs():
  spec = build_backbone("resnet_cifar", (32, 32, 3), 10)
  assert len(spec.blocks) == 9
  space = make_search_space(spec, exit_positions=(3, 6), branch_ops=("identity",), branch_depth=1,
                            branch_resolutions=(8,), bits=(8,))
  macs = sum(sig.macs for i in range(9) for sig in space.block_signatures(i, 8))
  assert 40e6 < macs < 42e6  # ResNet-20 is ~41 M MACs


def test_genotype_json_round_trip(tmp_path):
  spec = build_backbone("resnet_cifar", (8, 8, 1), 10, blocks_per_stage=1)
  genotype = Genotype(spec, (ExitGene(1, ("conv3_s2_x1", "identity"), (4, 2), 4),), (8, 4, 2), 8)
  genotype.save(tmp_path / "g.json")
  assert Genotype.load(tmp_path / "g.json") == genotype
  with pytest.raises(FileNotFoundError, match="dnas-ee derive"):
    Genotype.load(tmp_path / "missing.json")


def test_bad_exit_positions():
  spec = build_backbone("resnet_cifar", (8, 8, 1), 10, blocks_per_stage=1)
  with pytest.raises(ValueError, match="out of range"):
    make_search_space(spec, exit_positions=(3,), branch_ops=("identity",), branch_depth=1,
                      branch_resolutions=(4,), bits=(8,))
