"""Decision tests: on synthetic problems whose right answer is known, the search objective
moves the architecture where it should (and the search and evaluation price EDP alike)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dnas_ee.cost import ShapeCosts, build_cost_tables, static_cost
from dnas_ee.cost.tables import CombinedCosts
from dnas_ee.models.supernet import ArchProbs
from dnas_ee.relax import Relaxation
from dnas_ee.space.backbones import build_backbone
from dnas_ee.space.space import make_search_space
from dnas_ee.train.objective import (
    CostContext, ObjectiveSpec, expected_edp, search_objective)

CLASSES, BATCH = 4, 512


def _space(branch_op: str):
  backbone = build_backbone("resnet_cifar", (8, 8, 1), CLASSES, stage_widths=(8, 16, 16),
                            blocks_per_stage=(1, 1, 1), stem_width=8)
  return make_search_space(backbone, exit_positions=(1,), branch_ops=(branch_op,), branch_depth=1,
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
  return [jnp.asarray(early, jnp.float32), jnp.asarray(final, jnp.float32)], jnp.asarray(labels)


def _optimize_architecture(space, ctx, metrics, logits, labels, lam, *, objective="energy",
                           steps=300, learn_bits=False):
  """Adam on (beta, tau, bit logits) of the architecture step's loss, weights fixed."""
  spec = ObjectiveSpec(positions=(1,), objective=objective, metrics=metrics,
                       lam=lambda step: lam)
  relax = Relaxation(op_temperature=1.0, threshold_temperature=0.05)
  params = dict(beta=jnp.zeros((1,)), tau=jnp.full((1,), 0.9),
                bits=jnp.zeros((space.num_blocks, 3)), branch_bits=jnp.zeros((1, 3)))

  def loss(p):
    arch = ArchProbs(gates=jax.nn.sigmoid(p["beta"]), ops=jnp.ones((1, 1, 1)),
                     backbone_bits=jax.nn.softmax(p["bits"] if learn_bits else
                                                  jnp.asarray([[0.0, 0.0, 9.0]] * space.num_blocks)),
                     branch_bits=jax.nn.softmax(p["branch_bits"]), parallel=jnp.zeros((1,)),
                     thresholds=p["tau"])
    return search_objective(spec, ctx, logits, labels, arch, relax, jnp.zeros(()))[0]

  tx = optax.adam(0.05)
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    grads = jax.grad(loss)(params)
    updates, state = tx.update(grads, state)
    return optax.apply_updates(params, updates), state

  for _ in range(steps):
    params, state = step(params, state)
  return jax.tree.map(np.asarray, params)


def test_an_exit_that_separates_a_known_fraction_opens_when_cost_is_priced():
  space = _space("identity")   # a cheap exit: global pooling + dense
  ctx, metrics = _context(space, "energy")
  logits, labels = _logits(np.random.default_rng(0), correct_fraction_early=0.6)
  params = _optimize_architecture(space, ctx, metrics, logits, labels, lam=1.0)
  gate = 1 / (1 + np.exp(-params["beta"][0]))
  assert gate > 0.9, gate           # decided: on
  # The learned threshold lets the confident (correct) samples out and keeps the rest.
  assert params["tau"][0] < 0.95


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
  # Evaluation: the discrete network's cost of each exit, sample by sample.
  from dnas_ee.cost.discrete import discrete_exit_costs
  from dnas_ee.space.genotype import ExitGene, Genotype, genotype_space
  genotype = Genotype(space.backbone, (ExitGene(1, ("conv3_s1_x2",), (4,), 4),),
                      tuple(int(space.backbone_bits[0][b]) for b in bits), 8)
  per_exit = discrete_exit_costs(genotype_space(genotype), CombinedCosts(ShapeCosts(), _Energy()))
  lat, en = metrics.index("latency_s"), metrics.index("energy_j")
  exit_of = np.where(leave_early, 0, 1)
  evaluated = float(np.mean(per_exit[exit_of, lat] * per_exit[exit_of, en]))
  np.testing.assert_allclose(searched, evaluated, rtol=1e-5)
  # ... which is not the product of the means (the search's old definition).
  product = np.mean(per_exit[exit_of, lat]) * np.mean(per_exit[exit_of, en])
  assert abs(product - evaluated) > 1e-3 * evaluated
