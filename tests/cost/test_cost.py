"""The cost layer: zero-temperature equality with the discrete network, gradients, invariants."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings, strategies as st
from jax.test_util import check_grads

from support import oracle
from dnas_ee.cost import (
    ShapeCosts, build_cost_tables, cost_penalty, exit_probabilities,
    expected_branch_costs, expected_cost, static_cost)
from dnas_ee.exits.confidence import confidence
from dnas_ee.models.supernet import Supernet, relaxed_architecture
from dnas_ee.relax import Relaxation, soft_exit_decision
from dnas_ee.space.backbones import build_backbone
from dnas_ee.space.genotype import Genotype, derive_genotype
from dnas_ee.space.space import make_search_space

OPS = ("conv3_s1_x1", "conv3_s2_x2", "dwsep3_s2_x2", "maxpool2_s2", "avgpool2_s2", "identity")


def small_space(positions=(1, 2), depth=2):
  backbone = build_backbone("resnet_cifar", (8, 8, 1), 10, stage_widths=(8, 16, 16),
                            blocks_per_stage=(1, 1, 1), stem_width=8)
  return make_search_space(backbone, exit_positions=positions, branch_ops=OPS, branch_depth=depth,
                           branch_resolutions=(4, 2), bits=(2, 4, 8))


SPACE = small_space()
MODEL = Supernet(SPACE, rngs=nnx.Rngs(0))
GRAPHDEF, STATE = nnx.split(MODEL)
TABLES = build_cost_tables(SPACE, ShapeCosts())
HARD = Relaxation(hard=True)


@jax.jit
def _one_sample(state, image):
  model = nnx.merge(GRAPHDEF, state)
  logits = model(image[None], relaxed_architecture(model, HARD), train=False)
  return jnp.stack([confidence(l, "max_prob")[0] for l in logits[:-1]])


def _set_arch(rng):
  model = nnx.merge(GRAPHDEF, STATE)
  k = jax.random.split(jax.random.key(rng), 4)
  model.exit_logits[...] = jax.random.normal(k[0], model.exit_logits.shape)
  model.op_logits[...] = jax.random.normal(k[1], model.op_logits.shape)
  model.backbone_bit_logits[...] = jax.random.normal(k[2], model.backbone_bit_logits.shape)
  model.branch_bit_logits[...] = jax.random.normal(k[3], model.branch_bit_logits.shape)
  return model


@settings(max_examples=12, deadline=None)
@given(arch_seed=st.integers(0, 10_000), data_seed=st.integers(0, 10_000),
       tau=st.lists(st.floats(0.05, 0.95), min_size=2, max_size=2))
def test_relaxed_cost_at_zero_temperature_equals_discrete_network(arch_seed, data_seed, tau):
  model = _set_arch(arch_seed)
  state = nnx.state(model)
  images = jax.random.normal(jax.random.key(data_seed), (6, 8, 8, 1))
  tau = jnp.asarray(tau)
  # Relaxed: expected cost at hard mixtures, hard gates and hard thresholds.
  arch = relaxed_architecture(model, HARD)
  conf = jnp.stack([_one_sample(state, x) for x in images])        # sample by sample
  soft = soft_exit_decision(conf, tau[None], HARD)
  relaxed = np.asarray(expected_cost(TABLES, arch, soft, (1, 2)))
  # Discrete: derive the genotype, run its layers (the tests' oracle), charge each sample
  # its own exit.
  genotype = derive_genotype(SPACE, model.exit_logits[...], model.op_logits[...],
                             model.backbone_bit_logits[...], model.branch_bit_logits[...])
  per_exit = oracle.exit_costs(genotype, ShapeCosts())
  kept = [SPACE.branches.index(b) for b in SPACE.branches
          if b.position in [e.position for e in genotype.exits]]
  charged = []
  for c in np.asarray(conf):
    fired = [j for j, i in enumerate(kept) if c[i] >= tau[i]]
    charged.append(per_exit[fired[0] if fired else len(kept)])
  np.testing.assert_allclose(relaxed, np.mean(charged, axis=0), rtol=1e-5)


def test_exit_probabilities_sum_to_one():
  gates = jnp.array([0.3, 0.9, 0.5])
  soft = jax.random.uniform(jax.random.key(0), (7, 3))
  reach, leave = exit_probabilities(gates, soft)
  np.testing.assert_allclose(np.asarray(leave.sum(1)), 1.0, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(reach[:, 0]), 1.0)


def _cost_of_logits(beta, op_logits, bb_logits, br_logits, conf):
  arch = relaxed_architecture_from(beta, op_logits, bb_logits, br_logits)
  soft = soft_exit_decision(conf, jnp.array([0.5, 0.6]), Relaxation(threshold_temperature=0.1))
  return expected_cost(TABLES, arch, soft, (1, 2)) / static_cost(TABLES)


def relaxed_architecture_from(beta, op_logits, bb_logits, br_logits):
  from dnas_ee.models.supernet import ArchProbs
  return ArchProbs(jax.nn.sigmoid(beta), jax.nn.softmax(op_logits, -1),
                   jax.nn.softmax(bb_logits, -1), jax.nn.softmax(br_logits, -1),
                   jnp.zeros_like(beta))


def test_cost_gradients_match_finite_differences():
  k = jax.random.split(jax.random.key(1), 5)
  args = (jax.random.normal(k[0], (2,)), jax.random.normal(k[1], (2, 2, len(OPS))),
          jax.random.normal(k[2], (3, 3)), jax.random.normal(k[3], (2, 3)),
          jax.random.uniform(k[4], (5, 2)))
  with jax.enable_x64(True):
    args64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), args)
    global TABLES
    tables32 = TABLES
    TABLES = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tables32)
    try:
      f = lambda *a: jnp.sum(_cost_of_logits(*a) * jnp.array([1.0, 0.5, 0.25]))
      check_grads(f, args64, order=1, modes=["rev"], eps=1e-6, atol=1e-6, rtol=1e-5)
    finally:
      TABLES = tables32


def test_cost_layer_is_jit_vmap_safe():
  k = jax.random.split(jax.random.key(2), 3)
  ops = jax.nn.softmax(jax.random.normal(k[0], (4, 2, 2, len(OPS))), -1)
  bits = jax.nn.softmax(jax.random.normal(k[1], (4, 2, 3)), -1)
  batched = jax.jit(jax.vmap(lambda o, b: expected_branch_costs(TABLES, o, b)))(ops, bits)
  single = expected_branch_costs(TABLES, ops[2], bits[2])
  np.testing.assert_allclose(np.asarray(batched[2]), np.asarray(single), rtol=1e-6)


def test_identity_only_branch_costs_just_resizes_and_classifier():
  ops = jax.nn.one_hot(jnp.full((2, 2), OPS.index("identity")), len(OPS))
  bits = jax.nn.one_hot(jnp.full((2,), 2), 3)
  a = np.asarray(expected_branch_costs(TABLES, ops, bits))
  # MACs: only the dense classifier on the 8- and 16-channel features.
  np.testing.assert_allclose(a[:, 0], [8 * 10, 16 * 10])


def test_fewer_bits_never_cost_more_bytes():
  assert np.all(np.diff(np.asarray(TABLES.block[:, :, 1]), axis=1) >= 0)


@pytest.mark.parametrize("form", ["linear", "budget", "log"])
def test_penalty_forms(form):
  e, ref, w = jnp.array([50.0, 2.0]), jnp.array([100.0, 4.0]), jnp.array([1.0, 0.0])
  value = float(cost_penalty(e, ref, w, form=form, target=0.4))
  expected = {"linear": 0.5, "budget": 0.5 / 0.4 - 1, "log": np.log(0.5)}[form]
  assert value == pytest.approx(expected, rel=1e-6)


def test_a_space_without_exit_positions_prices_the_backbone_alone():
  """A bits-only search: no candidate exit, only the backbone's bit widths."""
  space = small_space(positions=())
  tables = build_cost_tables(space, ShapeCosts())
  widest = jax.nn.one_hot(jnp.full((space.num_blocks,), 2), 3)
  from dnas_ee.models.supernet import ArchProbs
  arch = ArchProbs(jnp.zeros((0,)), jnp.zeros((0, 0, 1)), widest, jnp.zeros((0, 3)), jnp.zeros((0,)))
  cost = expected_cost(tables, arch, jnp.zeros((4, 0)), ())
  np.testing.assert_allclose(np.asarray(cost), np.asarray(static_cost(tables)), rtol=1e-6)


class _LatencyEnergy:
  """A toy accelerator: latency from MACs, energy from BitOPs (both positive)."""
  metrics = ("latency_s", "energy_j")

  def __call__(self, sig):
    return np.array([1e-9 * (sig.macs + 50), 1e-12 * (sig.macs * sig.w_bits * sig.a_bits + 100)])


def _toy_context(space, source, objective):
  from dnas_ee.cost.search_cost import CostContext, CostSpec, metric_weights
  tables = build_cost_tables(space, source)
  p = len(space.branches)
  spec = CostSpec(positions=tuple(b.position for b in space.branches), objective=objective,
                  metrics=tables.metrics)
  ctx = CostContext(tables=tables, reference=static_cost(tables),
                    metric_weights=jnp.asarray(metric_weights(objective, tables.metrics, {})),
                    thresholds=jnp.full((p,), 0.5), exit_weights=jnp.full((p + 1,), 1 / (p + 1)),
                    transfer_latency=jnp.zeros((p, 3)), transfer_energy=jnp.zeros((p, 3)))
  return spec, ctx


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_search_cost_at_zero_temperature_equals_the_discrete_network(seed):
  """What the search prices (``cost.search_cost``: EDP per sample, BitOPs), at one-hot
  mixtures, hard gates and hard exit decisions, equals the oracle's network charged
  sample by sample."""
  from dnas_ee.cost.search_cost import search_cost
  from dnas_ee.cost.tables import CombinedCosts
  from dnas_ee.models.supernet import ArchProbs
  source = CombinedCosts(ShapeCosts(), _LatencyEnergy())
  k = jax.random.split(jax.random.key(seed), 5)
  beta = jax.random.normal(k[0], (2,))
  op_logits = jax.random.normal(k[1], (2, 2, len(OPS)))
  bb, br = jax.random.normal(k[2], (3, 3)), jax.random.normal(k[3], (2, 3))
  leave_early = np.asarray(jax.random.bernoulli(k[4], 0.4, (16, 2)), np.float32)
  hot = lambda logits: jax.nn.one_hot(jnp.argmax(logits, -1), logits.shape[-1])
  arch = ArchProbs((beta > 0).astype(jnp.float32), hot(op_logits), hot(bb), hot(br),
                   jnp.zeros((2,)))
  genotype = derive_genotype(SPACE, beta, op_logits, bb, br)
  per_exit = oracle.exit_costs(genotype, source)
  kept = [i for i in range(2) if beta[i] > 0]
  exit_of = [next((j for j, i in enumerate(kept) if row[i]), len(kept)) for row in leave_early]
  charged = per_exit[exit_of]                                  # [B, M], sample by sample
  static = oracle.exit_costs(Genotype(SPACE.backbone, (), (8, 8, 8), 8), source)[-1]  # C_ref
  lat, en, bitops = (source.metrics.index(m) for m in ("latency_s", "energy_j", "bitops"))
  for objective, value in (("edp", np.mean(charged[:, lat] * charged[:, en])),
                           ("bitops", np.mean(charged[:, bitops]))):
    spec, ctx = _toy_context(SPACE, source, objective)
    ref = static[lat] * static[en] if objective == "edp" else static[bitops]
    _, expected, ratio = search_cost(spec, ctx, arch, jnp.asarray(leave_early))
    np.testing.assert_allclose(float(ratio), value / ref, rtol=2e-5)
    np.testing.assert_allclose(np.asarray(expected), charged.mean(0), rtol=2e-5)


@pytest.mark.parametrize("objective", ["edp", "bitops"])
def test_log_penalty_gradients_match_finite_differences(objective):
  """The default penalty, ``log(cost / reference)`` of the priced metric, differentiated
  through the mixtures, gates and soft exit decisions."""
  from dnas_ee.cost.search_cost import search_cost
  from dnas_ee.cost.tables import CombinedCosts
  source = CombinedCosts(ShapeCosts(), _LatencyEnergy())
  with jax.enable_x64(True):
    spec, ctx = _toy_context(SPACE, source, objective)
    ctx = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), ctx)
    k = jax.random.split(jax.random.key(3), 5)
    args = (jax.random.normal(k[0], (2,)), jax.random.normal(k[1], (2, 2, len(OPS))),
            jax.random.normal(k[2], (3, 3)), jax.random.normal(k[3], (2, 3)),
            jax.random.uniform(k[4], (5, 2)))
    args = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), args)

    def penalty(beta, op_logits, bb, br, conf):
      arch = relaxed_architecture_from(beta, op_logits, bb, br)
      soft = soft_exit_decision(conf, jnp.array([0.5, 0.6]), Relaxation(threshold_temperature=0.1))
      return search_cost(spec, ctx, arch, soft)[0]

    assert spec.penalty == "log"
    check_grads(penalty, args, order=1, modes=["rev"], eps=1e-6, atol=1e-6, rtol=1e-5)


def test_edp_objective_gives_the_threshold_search_latency_and_energy_to_prune():
  """For 'edp' the calibration's costs are the two additive factors; their product at each
  exit is the exit's EDP, and pruning subtracts each branch from each factor."""
  from dnas_ee.cost.network import NetworkCosts, objective_costs
  metrics = ("macs", "latency_s", "energy_j")
  cumulative = np.array([[10.0, 2.0, 3.0], [20.0, 4.0, 5.0], [30.0, 6.0, 7.0]])
  branch = np.array([[1.0, 0.5, 0.25], [2.0, 1.0, 0.5]])
  costs = NetworkCosts(metrics, cumulative, branch, True, None, None)
  obj = objective_costs("edp", costs, costs)
  np.testing.assert_array_equal(obj.cumulative, cumulative[:, 1:])
  np.testing.assert_array_equal(obj.branch, branch[:, 1:])
  np.testing.assert_allclose(np.prod(obj.cumulative, -1), costs.column(cumulative, "edp"))
  assert obj.reference == 6.0 * 7.0
  # exit 0 pruned, a sample leaving at exit 1: (4 - 0.5) x (5 - 0.25)
  np.testing.assert_allclose(np.prod(costs.deployed([np.inf, 0.5])[1, 1:]), 3.5 * 4.75)
  linear = objective_costs("latency", costs, costs)
  assert linear.cumulative.shape == (3,) and linear.branch.shape == (2,)
  multicore = NetworkCosts(metrics, cumulative, branch, False, None, None)
  assert objective_costs("edp", multicore, multicore).branch is None
