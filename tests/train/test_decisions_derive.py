"""Derive what was priced: undecided slots are reported and take the cheapest contender,
the matched-bits hand-placed genotype, and cost(derived) / cost(relaxed at the end)."""
import jax.numpy as jnp
import numpy as np
import pytest

from dnas_ee.cost import ShapeCosts, build_cost_tables, static_cost
from dnas_ee.cost.network import exit_costs
from dnas_ee.cost.search_cost import CostContext, CostSpec, metric_weights
from dnas_ee.space.backbones import build_backbone
from dnas_ee.space.genotype import SLOT_DECIDED, derive_genotype, genotype_space
from dnas_ee.space.space import make_search_space
from dnas_ee.train.derivation import derived_exit_rates, priced_record

OPS = ("conv5_s2_x2", "conv3_s2_x1", "avgpool2_s2")   # most expensive first
BITOPS = 2


def _space():
  backbone = build_backbone("resnet_cifar", (8, 8, 1), 10, stage_widths=(8, 16, 16),
                            blocks_per_stage=(1, 1, 1), stem_width=8)
  return make_search_space(backbone, exit_positions=(1, 2), branch_ops=OPS, branch_depth=2,
                           branch_resolutions=(4, 2), bits=(2, 4, 8))


def _path_cost(genotype, j):
  return float(exit_costs(genotype_space(genotype), ShapeCosts())[j, BITOPS])


def _logits(space, undecided: bool):
  """Both gates open; exit 1's first slot near uniform (the most expensive op barely on
  top) when ``undecided``, every other slot decided on ``avgpool2_s2``."""
  op_logits = np.zeros((2, 2, len(OPS)))
  op_logits[:, :, 2] = 5.0
  if undecided:
    op_logits[0, 0] = [0.05, 0.0, 0.02]
  return dict(exit_logits=np.array([6.0, 6.0]), op_logits=op_logits,
              backbone_bit_logits=np.tile([0.0, 0.0, 5.0], (3, 1)),
              branch_bit_logits=np.tile([0.0, 5.0, 0.0], (2, 1)))


def _derive(space, arch, **kw):
  return derive_genotype(space, arch["exit_logits"], arch["op_logits"],
                         arch["backbone_bit_logits"], arch["branch_bit_logits"],
                         temperature=1.0, path_cost=_path_cost, **kw)


def test_an_undecided_slot_is_reported_and_takes_its_cheapest_contender():
  space = _space()
  arch = _logits(space, undecided=True)
  argmax, priced = _derive(space, arch, ops="argmax"), _derive(space, arch, ops="priced")
  assert argmax.exits[0].ops[0] == "conv5_s2_x2"      # the argmax of a near-uniform slot
  assert priced.exits[0].ops[0] == "avgpool2_s2"      # the cheapest of its contenders
  assert priced.exits[0].ops[1:] == argmax.exits[0].ops[1:] and priced.exits[1] == argmax.exits[1]
  record = priced.derivation
  assert record["ops"] == "priced" and record["undecided_slots"] == 1
  slot = record["exits"][0]["slots"][0]
  assert not slot["decided"] and slot["top_prob"] < SLOT_DECIDED
  assert slot["priced"]["chosen"] == "avgpool2_s2"
  assert set(slot["priced"]["contenders"]) == set(OPS)
  assert record["exits"][1]["slots_decided"]
  # A decided architecture derives the same genotype under either rule.
  decided = _logits(space, undecided=False)
  assert _derive(space, decided, ops="priced") == _derive(space, decided, ops="argmax")
  assert _derive(space, decided, ops="priced").derivation["undecided_slots"] == 0


def test_hand_placed_exits_at_the_searched_bits():
  space = _space()
  arch = _logits(space, undecided=True)
  arch["exit_logits"] = np.array([-3.0, 2.0])          # the search closed exit 1
  genotype = _derive(space, arch, exits="hand_placed", hand_placed_ops=("conv3_s2_x1",))
  assert [e.position for e in genotype.exits] == [1, 2]
  assert all(e.ops == ("conv3_s2_x1", "identity") for e in genotype.exits)
  assert genotype.backbone_bits == (8, 8, 8) and all(e.bits == 4 for e in genotype.exits)
  assert genotype.derivation["ops"] == "hand_placed"


def _context(space):
  tables = build_cost_tables(space, ShapeCosts())
  spec = CostSpec(positions=(1, 2), objective="bitops", metrics=tables.metrics)
  ctx = CostContext(tables=tables, reference=static_cost(tables),
                    metric_weights=jnp.asarray(metric_weights("bitops", tables.metrics, {})),
                    thresholds=jnp.full((2,), 0.5), exit_weights=jnp.full((3,), 1 / 3),
                    transfer_latency=jnp.zeros((2, 3)), transfer_energy=jnp.zeros((2, 3)))
  return spec, ctx


@pytest.mark.parametrize("ops, above_one", [("argmax", True), ("priced", False)])
def test_cost_of_the_derived_over_the_relaxed_network(ops, above_one):
  """The digits audit's case: a slot left near uniform was priced at its mixture's average
  and derived at its argmax, the most expensive op: the derived exit costs more than
  was priced. Deriving the priced choice does not."""
  space = _space()
  spec, ctx = _context(space)
  arch = _logits(space, undecided=True)
  genotype = _derive(space, arch, ops=ops)
  leave = np.array([0.6, 0.3, 0.1])
  record = priced_record(spec, ctx, lambda g: exit_costs(genotype_space(g), ShapeCosts()),
                         arch, 1.0, genotype, leave)
  assert len(record["path_ratio"]) == 3
  assert (record["path_ratio"][0] > 1.02) == above_one, record
  assert (record["ratio"] > 1.01) == above_one, record
  np.testing.assert_allclose(record["path_ratio"][1:], 1.0, atol=0.05)   # decided elsewhere


def test_derived_exit_rates_keep_each_kept_exits_conditional_rate():
  gates = np.array([1.0, 0.5])
  leave = np.array([0.5, 0.25, 0.25])    # reach 1, 0.5; conditional rates 0.5, 1.0 / gate 0.5
  np.testing.assert_allclose(derived_exit_rates(leave, gates, [0, 1]), [0.5, 0.5, 0.0])
  np.testing.assert_allclose(derived_exit_rates(leave, gates, [0]), [0.5, 0.5])
  np.testing.assert_allclose(derived_exit_rates(leave, gates, []), [1.0])
