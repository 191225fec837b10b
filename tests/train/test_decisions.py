"""Decision tests: on synthetic problems whose right answer is known, the search objective
moves the architecture where it should (and the search and evaluation price EDP alike)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from support import oracle
from dnas_ee.cost import ShapeCosts, build_cost_tables, static_cost
from dnas_ee.cost.search_cost import CostContext, expected_edp
from dnas_ee.cost.tables import CombinedCosts
from dnas_ee.models.supernet import ArchProbs
from dnas_ee.relax import Relaxation, bounded_threshold, threshold_logit
from dnas_ee.space.backbones import build_backbone
from dnas_ee.space.space import make_search_space
from dnas_ee.train.objective import ObjectiveSpec, search_objective

CLASSES, BATCH = 4, 512
CONF_RANGE = (1.0 / CLASSES, 1.0)   # max_prob's


def _space(*branch_ops: str):
  backbone = build_backbone("resnet_cifar", (8, 8, 1), CLASSES, stage_widths=(8, 16, 16),
                            blocks_per_stage=(1, 1, 1), stem_width=8)
  return make_search_space(backbone, exit_positions=(1,), branch_ops=branch_ops, branch_depth=1,
                           branch_resolutions=(4,), bits=(2, 4, 8), edge_bits=8)


class _Energy:
  """A toy accelerator: energy proportional to BitOPs, latency to MACs (both positive)."""
  metrics = ("latency_s", "energy_j")

  def __call__(self, sig):
    return np.array([sig.macs * 1e-9, sig.macs * sig.w_bits * sig.a_bits * 1e-12])


def _context(space, objective: str):
  source = CombinedCosts(ShapeCosts(), _Energy())
  tables = build_cost_tables(space, source)
  weights = np.array([m == {"bitops": "bitops", "energy": "energy_j"}.get(objective, "")
                      for m in tables.metrics], np.float32)
  ctx = CostContext(tables=tables, reference=jnp.asarray(static_cost(tables)),
                    metric_weights=jnp.asarray(weights), thresholds=jnp.full((1,), 0.9),
                    exit_weights=jnp.full((2,), 0.5),
                    transfer_latency=jnp.zeros((1, 3)), transfer_energy=jnp.zeros((1, 3)))
  return ctx, tables.metrics


def _logits(rng, correct_fraction_early: float):
  """Per-exit logits with known competence: the final exit is right and confident on
  every sample; exit 1 on a known fraction of them (confidently), and uncertain and
  wrong-ish on the rest."""
  labels = rng.integers(0, CLASSES, BATCH)
  onehot = np.eye(CLASSES)[labels]
  final = 8.0 * onehot + rng.normal(0, 0.3, (BATCH, CLASSES))
  easy = rng.random(BATCH) < correct_fraction_early
  early = np.where(easy[:, None], 8.0 * onehot, 0.0) + rng.normal(0, 0.3, (BATCH, CLASSES))
  return [[jnp.asarray(early, jnp.float32)], jnp.asarray(final, jnp.float32)], jnp.asarray(labels)


def _optimize_architecture(space, ctx, metrics, logits, labels, lam, *, objective="energy",
                           steps=300, learn_bits=False, backbone_bits=2, penalty="log",
                           mode="softmax"):
  """Adam on (beta, tau, op and bit logits) of the architecture step's loss, weights fixed.

  ``logits``: ``[early exit logits per candidate op, final logits]``; the exit's logits
  are the op mixture of its candidates' (a linear stand-in for the branch's mixture).
  ``backbone_bits``: the index of the fixed width of the backbone and the branch when the
  bits are not learned.
  ``mode``: 'softmax'; 'sampled' (the bit widths are one-hot straight-through samples,
  for the task and the cost alike; ops and gates relaxed); 'gumbel' (Gumbel-softmax
  mixtures and relaxed-Bernoulli gates, one noisy draw per step).
  """
  spec = ObjectiveSpec(positions=(1,), objective=objective, metrics=metrics, penalty=penalty,
                       lam=lambda step: lam)
  relax = Relaxation(op_temperature=1.0, threshold_temperature=0.05,
                     mixture_mode="gumbel" if mode == "gumbel" else "softmax",
                     gate_mode="gumbel" if mode == "gumbel" else "sigmoid")
  candidates, final = jnp.stack(logits[0]), logits[1]
  fixed = jnp.asarray([[9.0 * (b == backbone_bits) for b in range(3)]] * space.num_blocks)
  params = dict(beta=jnp.zeros((1,)), tau=jnp.asarray(threshold_logit([0.9], *CONF_RANGE), jnp.float32),
                ops=jnp.zeros((1, 1, len(logits[0]))),
                bits=jnp.zeros((space.num_blocks, 3)), branch_bits=jnp.zeros((1, 3)))

  def loss(p, key):
    from dnas_ee.relax import exit_gates, mixture_probs, sample_one_hot
    keys = jax.random.split(key, 4)
    bits = p["bits"] if learn_bits else fixed
    if mode == "sampled":
      widths = lambda l, k: sample_one_hot(l, 1.0, k)
    else:
      widths = lambda l, k: mixture_probs(l, relax, k)
    ops = mixture_probs(p["ops"], relax, keys[0])
    branch_bits = p["branch_bits"] if learn_bits else fixed[:1]
    arch = ArchProbs(gates=exit_gates(p["beta"], relax, keys[1]), ops=ops,
                     backbone_bits=widths(bits, keys[2]), branch_bits=widths(branch_bits, keys[3]),
                     parallel=jnp.zeros((1,)), thresholds=bounded_threshold(p["tau"], *CONF_RANGE))
    exit_logits = jnp.einsum("k,kbc->bc", ops[0, 0], candidates)
    return search_objective(spec, ctx, [exit_logits, final], labels, arch, relax, jnp.zeros(()))[0]

  tx = optax.adam(0.05)
  state = tx.init(params)

  @jax.jit
  def step(params, state, key):
    grads = jax.grad(loss)(params, key)
    updates, state = tx.update(grads, state)
    return optax.apply_updates(params, updates), state

  for key in jax.random.split(jax.random.key(0), steps):
    params, state = step(params, state, key)
  params = jax.tree.map(np.asarray, params)
  params["threshold"] = np.asarray(bounded_threshold(params["tau"], *CONF_RANGE))
  return params


def test_an_exit_that_separates_a_known_fraction_opens_when_cost_is_priced():
  space = _space("identity")   # a cheap exit: global pooling + dense
  ctx, metrics = _context(space, "energy")
  logits, labels = _logits(np.random.default_rng(0), correct_fraction_early=0.6)
  params = _optimize_architecture(space, ctx, metrics, logits, labels, lam=1.0)
  gate = 1 / (1 + np.exp(-params["beta"][0]))
  assert gate > 0.9, gate           # decided: on
  # The learned threshold lets the confident (correct) samples out and keeps the rest.
  assert params["threshold"][0] < 0.95


def test_a_useless_costly_exit_stays_closed():
  space = _space("conv3_s1_x2")   # a costly branch ...
  ctx, metrics = _context(space, "energy")
  logits, labels = _logits(np.random.default_rng(1), correct_fraction_early=0.0)  # ... that never knows
  params = _optimize_architecture(space, ctx, metrics, logits, labels, lam=1.0)
  gate = 1 / (1 + np.exp(-params["beta"][0]))
  assert gate < 0.1, gate           # decided: off


@pytest.mark.parametrize("lam", [0.0, 2.0])
def test_bit_widths_fall_only_when_energy_is_priced(lam):
  space = _space("identity")
  ctx, metrics = _context(space, "energy")
  logits, labels = _logits(np.random.default_rng(2), correct_fraction_early=0.6)
  params = _optimize_architecture(space, ctx, metrics, logits, labels, lam=lam, learn_bits=True)
  chosen = np.asarray(space.backbone_bits[0])[params["bits"].argmax(-1)]
  if lam == 0.0:   # no price: nothing moves the bits (the task term here does not depend on them)
    np.testing.assert_array_equal(params["bits"], 0.0)
  else:
    assert (chosen == 2).all(), chosen


def test_search_time_edp_equals_evaluation_edp_at_zero_temperature():
  """EDP in the search is E[latency x energy] over the exit each sample takes."""
  space = _space("conv3_s1_x2")
  ctx, metrics = _context(space, "energy")
  spec = ObjectiveSpec(positions=(1,), objective="edp", metrics=metrics)
  rng = np.random.default_rng(3)
  leave_early = rng.random(64) < 0.4
  soft = jnp.asarray(leave_early[:, None], jnp.float32)            # hard exit decisions
  bits = rng.integers(0, 3, space.num_blocks)
  arch = ArchProbs(gates=jnp.ones((1,)), ops=jnp.ones((1, 1, 1)),
                   backbone_bits=jax.nn.one_hot(bits, 3), branch_bits=jax.nn.one_hot([1], 3),
                   parallel=jnp.zeros((1,)))
  searched = float(expected_edp(spec, ctx, arch, soft))
  # Evaluation: the discrete network's cost of each exit (the tests' oracle), sample by sample.
  from dnas_ee.space.genotype import ExitGene, Genotype
  genotype = Genotype(space.backbone, (ExitGene(1, ("conv3_s1_x2",), (4,), 4),),
                      tuple(int(space.backbone_bits[0][b]) for b in bits), 8)
  per_exit = oracle.exit_costs(genotype, CombinedCosts(ShapeCosts(), _Energy()))
  lat, en = metrics.index("latency_s"), metrics.index("energy_j")
  exit_of = np.where(leave_early, 0, 1)
  evaluated = float(np.mean(per_exit[exit_of, lat] * per_exit[exit_of, en]))
  np.testing.assert_allclose(searched, evaluated, rtol=1e-5)
  # ... which is not the product of the means (the search's old definition).
  product = np.mean(per_exit[exit_of, lat]) * np.mean(per_exit[exit_of, en])
  assert abs(product - evaluated) > 1e-3 * evaluated


def _competence_logits(rng, fractions):
  """Per-candidate early logits, each op confidently right on its own fraction of the
  samples (the same samples first), and a final exit right on all of them."""
  labels = rng.integers(0, CLASSES, BATCH)
  onehot = np.eye(CLASSES)[labels]
  order = rng.random(BATCH)
  noise = rng.normal(0, 0.3, (BATCH, CLASSES))
  early = [jnp.asarray(np.where((order < f)[:, None], 8.0 * onehot, 0.0) + noise, jnp.float32)
           for f in fractions]
  final = jnp.asarray(8.0 * onehot + rng.normal(0, 0.3, (BATCH, CLASSES)), jnp.float32)
  return [early, final], jnp.asarray(labels)


@pytest.mark.parametrize("backbone_bits", [2, 0])   # 8-bit backbone; 2-bit (a cheap network)
def test_a_cheap_exit_as_accurate_as_an_expensive_one_is_chosen(backbone_bits):
  """Two candidate branches, equally competent: the search takes the cheap one and opens the
  exit, whether the rest of the network is expensive or already cheap."""
  space = _space("conv3_s1_x2", "avgpool2_s2")     # expensive, cheap
  ctx, metrics = _context(space, "energy")
  logits, labels = _competence_logits(np.random.default_rng(4), [0.6, 0.6])
  params = _optimize_architecture(space, ctx, metrics, logits, labels, lam=1.0,
                                  backbone_bits=backbone_bits)
  ops = np.asarray(jax.nn.softmax(params["ops"][0, 0]))
  assert ops[1] > 0.9, ops
  assert 1 / (1 + np.exp(-params["beta"][0])) > 0.9


def test_the_log_penalty_moves_ops_where_the_linear_one_cannot():
  """The digits audit's failure: once the network is cheap (2 bits everywhere, energy
  1/16 of the 8-bit reference) the linear form prices halving an exit's cost at
  ``lambda x (its share of the reference)``, below a small accuracy gap, and the op stays
  where the accuracy puts it; the log form prices every relative saving the same wherever
  the search is, and takes the cheap op at 2 bits as at 8."""
  space = _space("conv3_s1_x2", "avgpool2_s2")
  ctx, metrics = _context(space, "energy")
  logits, labels = _competence_logits(np.random.default_rng(5), [0.7, 0.62])   # cheap: 8% worse
  cheap = {}
  for penalty in ("linear", "log"):
    for bits in (2, 0):   # index of 8 bits, 2 bits
      params = _optimize_architecture(space, ctx, metrics, logits, labels, lam=1.0, penalty=penalty,
                                      backbone_bits=bits)
      cheap[penalty, bits] = float(jax.nn.softmax(params["ops"][0, 0])[1])
  assert cheap["log", 2] > 0.99 and cheap["log", 0] > 0.99, cheap
  assert cheap["linear", 2] > 0.99 and cheap["linear", 0] < 0.5, cheap


def test_a_threshold_never_leaves_the_confidence_range():
  """An exit confidently wrong on every sample: the expected loss pushes its threshold up
  for the whole run; bounded, it stays below max_prob's top (1.0) with a live gradient."""
  space = _space("identity")
  ctx, metrics = _context(space, "energy")
  rng = np.random.default_rng(6)
  labels = rng.integers(0, CLASSES, BATCH)
  wrong = np.eye(CLASSES)[(labels + 1) % CLASSES]
  logits = [[jnp.asarray(9.0 * wrong, jnp.float32)], jnp.asarray(9.0 * np.eye(CLASSES)[labels])]
  params = _optimize_architecture(space, ctx, metrics, logits, jnp.asarray(labels), lam=0.0,
                                  steps=600)
  lo, hi = CONF_RANGE
  assert lo < params["threshold"][0] < hi
  assert params["threshold"][0] > 0.95     # it did move up, towards the top of the range


@pytest.mark.parametrize("mode", ["sampled", "gumbel"])
def test_sampled_and_gumbel_modes_keep_a_competent_exit_open(mode):
  """A cheap exit confidently right on 60% of the samples opens in the noisy modes too:
  the sampled mode draws only bit widths (task and cost on the same draw), the Gumbel
  mode draws noisy mixtures and gates; bits are learned as well."""
  space = _space("avgpool2_s2", "conv3_s1_x2")
  ctx, metrics = _context(space, "energy")
  logits, labels = _competence_logits(np.random.default_rng(7), [0.6, 0.6])
  params = _optimize_architecture(space, ctx, metrics, logits, labels, lam=1.0, learn_bits=True,
                                  mode=mode)
  assert 1 / (1 + np.exp(-params["beta"][0])) > 0.9, params["beta"]
  assert CONF_RANGE[0] < params["threshold"][0] < CONF_RANGE[1]


def test_bounded_threshold_map_range_and_gradient():
  from jax.test_util import check_grads
  for lo, hi in (CONF_RANGE, (0.0, 1.0), (-np.log(10), 0.0)):
    raw = jnp.linspace(-1e3, 1e3, 2001)
    tau = np.asarray(bounded_threshold(raw, lo, hi))
    assert np.all(tau >= np.float32(lo)) and np.all(tau <= np.float32(hi))   # float32 ends
    assert np.all(np.diff(tau) >= 0)
    mid = 0.5 * (lo + hi)
    np.testing.assert_allclose(float(bounded_threshold(jnp.asarray(mid), lo, hi)), mid, atol=1e-6)
    np.testing.assert_allclose(float(jax.grad(bounded_threshold)(jnp.asarray(mid), lo, hi)), 1.0,
                               rtol=1e-5)
    for tau0 in (lo + 0.1 * (hi - lo), mid, hi - 0.05 * (hi - lo)):
      np.testing.assert_allclose(float(bounded_threshold(jnp.asarray(threshold_logit(tau0, lo, hi)),
                                                         lo, hi)), tau0, rtol=1e-5, atol=1e-6)
    with jax.enable_x64(True):
      check_grads(lambda r: bounded_threshold(r, lo, hi),
                  (jnp.asarray([mid - 0.3, mid, mid + 0.2], jnp.float64),), order=2, eps=1e-5)
