"""The sampled single-path search mode (GDAS's straight-through Gumbel estimator)."""
import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from core_support import tiny_overrides
from dnas_ee import pipeline
from dnas_ee.config import apply_overrides
from dnas_ee.models.supernet import Supernet, relaxed_architecture, sampled_architecture
from dnas_ee.relax import Relaxation, sample_one_hot
from dnas_ee.space.backbones import build_backbone
from dnas_ee.space.space import make_search_space
from dnas_ee.train.search import search_step

K = 5


def _toy():
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=K), jnp.float32)
  outputs = jnp.asarray(rng.normal(size=(K, 3)), jnp.float32)   # each candidate's output
  target = jnp.asarray(rng.normal(size=3), jnp.float32)
  return logits, outputs, target


def test_sampled_architecture_gradient_points_where_the_exact_one_does():
  """GDAS's estimator is biased (straight-through): checked against the exact gradient of
  the expected loss ``sum_k p_k L_k`` over 20k samples. Bound: the same direction
  (cosine > 0.95) and the same most-pushed candidate; the scale is not matched (about
  half here), which Adam's normalization absorbs."""
  logits, outputs, target = _toy()
  per_path = jnp.sum((outputs - target) ** 2, axis=-1)

  def exact(l):
    return jnp.sum(jax.nn.softmax(l) * per_path)

  def sampled(l, key):   # runs one candidate, as the supernet's single path does
    h = sample_one_hot(l, 1.0, key)
    k = jnp.argmax(h)
    return jnp.sum((h[k] * outputs[k] - target) ** 2)

  keys = jax.random.split(jax.random.key(0), 20000)
  estimate = jnp.mean(jax.vmap(jax.grad(sampled), (None, 0))(logits, keys), axis=0)
  truth = jax.grad(exact)(logits)
  cosine = float(estimate @ truth / (jnp.linalg.norm(estimate) * jnp.linalg.norm(truth)))
  assert cosine > 0.95, (cosine, estimate, truth)
  assert int(jnp.argmax(jnp.abs(estimate))) == int(jnp.argmax(jnp.abs(truth)))


def test_samples_follow_the_annealed_probabilities():
  logits, _, _ = _toy()
  keys = jax.random.split(jax.random.key(1), 20000)
  counts = np.bincount(np.asarray(jax.vmap(lambda k: jnp.argmax(sample_one_hot(logits / 0.5, 1.0, k)))(keys)),
                       minlength=K) / len(keys)
  np.testing.assert_allclose(counts, np.asarray(jax.nn.softmax(logits / 0.5)), atol=0.015)


def test_single_path_forward_equals_the_mixture_at_the_same_one_hot():
  backbone = build_backbone("resnet_cifar", (8, 8, 1), 10, stage_widths=(8, 16, 16),
                            blocks_per_stage=(1, 1, 1), stem_width=8)
  space = make_search_space(backbone, exit_positions=(1, 2), branch_depth=2,
                            branch_ops=("conv3_s2_x2", "dwsep3_s1_x2", "maxpool2_s2", "identity"),
                            branch_resolutions=(4, 2), bits=(2, 4, 8), edge_bits=8)
  model = Supernet(space, rngs=nnx.Rngs(0))
  relax = Relaxation(op_temperature=1.0)
  probs = relaxed_architecture(model, relax)
  path = sampled_architecture(model, probs, relax, jax.random.key(3))
  images = jnp.asarray(np.random.default_rng(0).normal(size=(4, 8, 8, 1)), jnp.float32)
  switched = model(images, path, train=False)
  mixed = model(images, dataclasses.replace(path, single_path=False), train=False)
  for a, b in zip(switched, mixed):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
  # The path is one-hot in value; its gradient reaches every logit.
  assert set(np.unique(np.asarray(path.ops))) <= {0.0, 1.0}


def test_sampled_search_step_does_not_retrace_and_moves_the_architecture(tiny_config):
  apply_overrides(tiny_config, ["--config.search.mixture_mode=sampled",
                                "--config.search.warmup_steps=0"])
  run = pipeline.prepare_search(tiny_config)
  chex.clear_trace_counter()

  def traced_step(state, train_batch, val_batch, ctx):
    return search_step(state, train_batch, val_batch, ctx, setup=run.setup)

  step_fn = jax.jit(chex.assert_max_traces(traced_step, n=1), donate_argnums=0)
  # No convolution inside the switched candidates is left in the transposed forms lax's
  # own gradients take (input gradient b01f_01oi, filter gradient f01b_i01o), which
  # XLA:CPU ran 10-50x slower in a switch branch (dnas_ee.models.conv); XLA may still
  # swap the operands of a tiny one (1x1 or 2x2 outputs here) on its own.
  hlo = step_fn.lower(run.state, *pipeline.search_batches(run, tiny_config, 0), run.ctx)
  switched = [line.split("dim_labels=")[1].split(",")[0]
              for line in hlo.compile().as_text().splitlines()
              if " convolution(" in line and "/cond/" in line]
  assert switched.count("b01f_01io->b01f") >= len(switched) // 2, switched
  assert not {"b01f_01oi->b01f", "f01b_i01o->01bf"} & set(switched), switched
  chex.clear_trace_counter()
  before = [np.asarray(x).copy() for x in jax.tree.leaves(run.state.arch)]
  state = run.state
  for step in range(4):   # a new path is sampled at every step, with one trace
    state, metrics = step_fn(state, *pipeline.search_batches(run, tiny_config, step), run.ctx)
  assert bool(metrics["finite"])
  after = [np.asarray(x) for x in jax.tree.leaves(state.arch)]
  assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_sampled_digits_run_end_to_end(tmp_path):
  from dnas_ee.cli import main
  workdir = tmp_path / "sampled"
  assert main(["run", "--config", "experiments/configs/digits.py", "--workdir", str(workdir),
               "--no-progress", *tiny_overrides(), "--config.search.mixture_mode=sampled"]) == 0
  import json
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["early_exit"]["accuracy"] > 0.3   # 10 classes; a tiny run still learns
  assert (workdir / "genotype.json").exists() and (workdir / "search_trajectory.json").exists()
