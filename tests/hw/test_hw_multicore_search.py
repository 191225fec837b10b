"""Resource allocation in the search: the relaxed cost at zero temperature on the quad-core
accelerator equals the discrete network's schedule, sample by sample."""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from hypothesis import given, settings, strategies as st

from dnas_ee import pipeline
from dnas_ee.config import apply_overrides, load_config_file
from dnas_ee.exits.confidence import confidence
from dnas_ee.models.supernet import Supernet, relaxed_architecture
from dnas_ee.relax import Relaxation, soft_exit_decision
from dnas_ee.space.genotype import derive_genotype, genotype_space
from dnas_ee.train import build
from dnas_ee.cost.search_cost import expected_costs

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config_file(ROOT / "experiments" / "configs" / "digits.py")
apply_overrides(CONFIG, ["--config.hw.accelerator=quad_core_edge_tpu_like",
                         "--config.hw.objective=edp",
                         "--config.space.branch_ops=('conv3_s2_x2', 'dwsep3_s1_x2', 'identity')"])
SPACE = build.build_space(CONFIG, (8, 8, 1), 10)
SPEC, CTX = build.build_objective(CONFIG, SPACE, build.build_cost_source(CONFIG, SPACE))
GRAPHDEF, STATE = nnx.split(Supernet(SPACE, rngs=nnx.Rngs(0)))
HARD = Relaxation(hard=True)


@jax.jit
def _confidences(state, image):
  model = nnx.merge(GRAPHDEF, state)
  logits = model(image[None], relaxed_architecture(model, HARD), train=False)
  return jnp.stack([confidence(l, "max_prob")[0] for l in logits[:-1]])


def test_multicore_objective_is_on():
  assert SPEC.multicore and float(jnp.max(CTX.transfer_latency)) > 0


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), tau=st.floats(0.1, 0.9))
def test_zero_temperature_cost_equals_discrete_schedule(seed, tau):
  model = nnx.merge(GRAPHDEF, STATE)
  keys = jax.random.split(jax.random.key(seed), 6)
  for k, name in zip(keys, ("exit_logits", "op_logits", "backbone_bit_logits",
                            "branch_bit_logits", "alloc_logits")):
    var = getattr(model, name)
    var[...] = jax.random.normal(k, var.shape)
  state = nnx.state(model)
  images = jax.random.normal(keys[5], (5, 8, 8, 1))
  conf = jnp.stack([_confidences(state, x) for x in images])
  thresholds = jnp.full((len(SPACE.branches),), tau)
  arch = relaxed_architecture(model, HARD)
  relaxed = np.asarray(expected_costs(SPEC, CTX, arch, soft_exit_decision(conf, thresholds[None], HARD)))
  genotype = derive_genotype(SPACE, model.exit_logits[...], model.op_logits[...],
                             model.backbone_bit_logits[...], model.branch_bit_logits[...],
                             alloc_logits=model.alloc_logits[...])
  per_exit, metrics = pipeline.network_exit_costs(CONFIG, genotype_space(genotype))
  kept = [i for i, b in enumerate(SPACE.branches) if b.position in [e.position for e in genotype.exits]]
  charged = []
  for c in np.asarray(conf):
    fired = [j for j, i in enumerate(kept) if c[i] >= tau]
    charged.append(per_exit[fired[0] if fired else len(kept)])
  np.testing.assert_allclose(relaxed, np.mean(charged, axis=0), rtol=2e-5)
  assert metrics == SPEC.metrics
