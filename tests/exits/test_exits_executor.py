"""The dynamic executor equals the "evaluate every exit" reference, batched and single.

Derived networks with random weights (no training): random genotypes of a small
digits space, random BatchNorm statistics, random inputs. The reference is
``pipeline.exit_logits`` + ``exit_table`` + ``first_exit``; the executor must give
the same exit, prediction, confidence and logits for every sample, including
samples that lie exactly on a threshold (thresholds taken from observed scores).
"""
from __future__ import annotations

import numpy as np
import pytest

from exits_support import SMALL, make_config, random_genotype, random_network, split_network
from dnas_ee import pipeline
from dnas_ee.exits import EarlyExitExecutor, bucket_for, bucket_sizes, plan_segments
from dnas_ee.exits.confidence import confidence, host_confidence
from dnas_ee.space.genotype import genotype_space

MEASURES = ("max_prob", "margin", "neg_entropy")


@pytest.fixture(scope="module")
def space():
  from dnas_ee.data.shapes import dataset_shape
  from dnas_ee.train import build
  config = make_config(SMALL + ["--config.space.exit_positions=(1, 2)"])
  return build.build_space(config, *dataset_shape(config.data))


def _images(n, seed=0):
  return np.random.default_rng(seed).standard_normal((n, 8, 8, 1)).astype(np.float32)


def _reference(model, images, measure, thresholds):
  setup, state = split_network(model)
  logits = pipeline.exit_logits(setup, state, images, 64)
  conf, _ = pipeline.exit_table(logits, np.zeros(len(images), np.int64), measure)
  taken = pipeline.first_exit(conf, np.asarray(thresholds, np.float64))
  rows = np.arange(len(images))
  return logits, conf, taken, logits[taken, rows].argmax(-1)


def _threshold_sets(conf, rng):
  """Mid quantiles, exact observed scores (ties), disabled exits, and 'always fire'."""
  num_early = conf.shape[1] - 1
  sets = [np.quantile(conf[:, :-1], 0.5, axis=0),
          conf[rng.integers(len(conf)), :-1],                   # on some sample's scores
          np.full(num_early, np.inf),
          np.full(num_early, -np.inf)]
  mixed = conf[rng.integers(len(conf)), :-1].copy()
  mixed[rng.integers(num_early)] = np.inf
  return sets + [mixed]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_executor_equals_reference_batched_and_single(space, seed):
  rng = np.random.default_rng(seed)
  genotype = random_genotype(space, rng, min_exits=1 + seed % 2)
  model = random_network(genotype, seed)
  measure = MEASURES[seed % 3]
  images = _images(150, seed)
  logits, conf, _, _ = _reference(model, images, measure, np.zeros(len(genotype.exits)))
  base = EarlyExitExecutor(model, np.zeros(len(genotype.exits)), measure, batch_size=32)
  for tau in _threshold_sets(conf, rng):
    ref_conf = conf
    taken = pipeline.first_exit(conf, tau)
    pred = logits[taken, np.arange(len(images))].argmax(-1)
    ex = base.with_thresholds(tau)
    out = ex.run(images)
    np.testing.assert_array_equal(out.exits, taken)
    np.testing.assert_array_equal(out.predictions, pred)
    np.testing.assert_array_equal(out.confidences, ref_conf[np.arange(len(images)), taken])
    np.testing.assert_array_equal(out.logits, logits[taken, np.arange(len(images))])
    single = ex.run_single(images[:40])
    np.testing.assert_array_equal(single.exits, taken[:40])
    np.testing.assert_array_equal(single.predictions, pred[:40])
    np.testing.assert_array_equal(single.confidences, out.confidences[:40])


def test_branch_gradient_scaling_is_reproduced(space):
  """A network trained with scaled exit gradients feeds its branches the same features."""
  import inspect
  from flax import nnx
  from dnas_ee.models.supernet import Supernet
  if "branch_grad_scale" not in inspect.signature(Supernet.__init__).parameters:
    pytest.skip("this Supernet has no branch_grad_scale")
  genotype = random_genotype(space, np.random.default_rng(7), min_exits=2)
  model = random_network(genotype, 7)
  scaled = Supernet(model.space, rngs=nnx.Rngs(0), branch_grad_scale=0.3)
  nnx.update(scaled, nnx.state(model))
  images = _images(64, 7)
  logits, conf, _, _ = _reference(scaled, images, "max_prob", [0.0, 0.0])
  tau = np.median(conf[:, :-1], axis=0)
  taken = pipeline.first_exit(conf, tau)
  out = EarlyExitExecutor(scaled, tau, "max_prob", batch_size=16).run(images)
  np.testing.assert_array_equal(out.exits, taken)
  np.testing.assert_array_equal(out.logits, logits[taken, np.arange(64)])


def test_thresholds_on_observed_scores_tie_exactly(space):
  """Every sample's own score as the threshold of exit 0: it must fire there."""
  model = random_network(random_genotype(space, np.random.default_rng(5), min_exits=2), 5)
  images = _images(64, 5)
  _, conf, _, _ = _reference(model, images, "max_prob", [0.0, 0.0])
  base = EarlyExitExecutor(model, [0.0, np.inf], "max_prob", batch_size=16)
  for i in range(0, 64, 7):
    tau = [conf[i, 0], np.inf]
    ex = base.with_thresholds(tau)
    assert ex.predict_one(images[i])[1] == 0
    taken = pipeline.first_exit(conf, np.asarray(tau))
    np.testing.assert_array_equal(ex.run(images).exits, taken)


def test_compaction_compiles_at_most_one_program_per_bucket(space):
  model = random_network(random_genotype(space, np.random.default_rng(3), min_exits=2), 3)
  images = _images(300, 3)
  _, conf, _, _ = _reference(model, images, "max_prob", [0.0, 0.0])
  tau = np.quantile(conf[:, :-1], 0.6, axis=0)
  ex = EarlyExitExecutor(model, tau, "max_prob", batch_size=32)
  assert ex.buckets == (2, 4, 8, 16, 32)
  for n in (300, 1, 17, 32, 33, 5, 129):           # many batch compositions
    ex.run(images[:n])
  for k in range(5):
    ex.predict_one(images[k])
  assert len(ex.segments) == 3
  assert all(0 < count <= len(ex.buckets) for count in ex.trace_counts), ex.trace_counts
  before = list(ex.trace_counts)
  ex.warmup()                                        # every bucket: only the missing ones
  assert all(count == len(ex.buckets) for count in ex.trace_counts)
  ex.run(_images(300, 4))
  assert ex.trace_counts == [len(ex.buckets)] * 3 and sum(before) <= ex.max_compiled_shapes


def test_with_thresholds_shares_compiled_segments(space):
  model = random_network(random_genotype(space, np.random.default_rng(4), min_exits=2), 4)
  images = _images(30)
  ex = EarlyExitExecutor(model, [0.5, 0.5], "max_prob", batch_size=8)
  ex.warmup([8])
  assert ex.trace_counts == [1, 1, 1]
  again = ex.with_thresholds([0.9, 0.1])            # same segments: nothing compiled
  again.run(images[:8])
  assert again.trace_counts == [1, 1, 1] and ex.thresholds.tolist() == [0.5, 0.5]
  pruned = ex.with_thresholds([np.inf, 0.1])        # blocks 1-2 + exit 2: a new segment
  pruned.warmup([8])
  assert pruned.trace_counts == [1, 1] and len(pruned.segments) == 2


def test_disabled_exits_are_pruned_from_the_segments(space):
  genotype = random_genotype(space, np.random.default_rng(0), min_exits=2)
  tsp = genotype_space(genotype)
  plans = plan_segments(tsp, [np.inf, 0.5])
  assert [(p.start, p.stop, p.exit, p.final) for p in plans] == [(0, 2, 1, False), (2, 3, 2, True)]
  plans = plan_segments(tsp, [np.inf, np.inf, -np.inf])
  assert [(p.start, p.stop, p.exit, p.final) for p in plans] == [(0, 3, 2, True)]


def test_static_network_is_one_segment(space):
  genotype = random_genotype(space, np.random.default_rng(1)).static
  model = random_network(genotype, 1)
  images = _images(20)
  ex = EarlyExitExecutor(model, [], "max_prob", batch_size=8)
  out = ex.run(images)
  logits, _, taken, pred = _reference(model, images, "max_prob", [])
  assert len(ex.segments) == 1 and (out.exits == 0).all() and (taken == 0).all()
  np.testing.assert_array_equal(out.predictions, pred)
  np.testing.assert_array_equal(out.logits, logits[0])


def test_baked_weights_run(space):
  model = random_network(random_genotype(space, np.random.default_rng(2), min_exits=2), 2)
  images = _images(40)
  exact = EarlyExitExecutor(model, [np.inf, np.inf], "max_prob", batch_size=16)
  baked = EarlyExitExecutor(model, [np.inf, np.inf], "max_prob", batch_size=16,
                            bake_weights=True)
  a, b = exact.all_exit_logits(images), baked.all_exit_logits(images)
  assert np.isnan(a[:2]).all() and np.isfinite(b[2]).all()
  # same network; XLA's rewrites on constants may move a quantization bin, nothing more
  assert (a[2].argmax(-1) == b[2].argmax(-1)).mean() >= 0.9


def test_clear_errors(space):
  from flax import nnx
  from dnas_ee.models.supernet import Supernet
  genotype = random_genotype(space, np.random.default_rng(0), min_exits=2)
  model = random_network(genotype, 0)
  with pytest.raises(ValueError, match="needs 2 thresholds"):
    EarlyExitExecutor(model, [0.5], "max_prob")
  with pytest.raises(ValueError, match="must be -inf"):
    EarlyExitExecutor(model, [0.5, 0.5, 0.5], "max_prob")
  with pytest.raises(ValueError, match="NaN"):
    EarlyExitExecutor(model, [0.5, np.nan], "max_prob")
  with pytest.raises(ValueError, match="unknown confidence measure"):
    EarlyExitExecutor(model, [0.5, 0.5], "entropy")
  with pytest.raises(ValueError, match="derived network"):
    EarlyExitExecutor(Supernet(space, rngs=nnx.Rngs(0)), [0.5, 0.5], "max_prob")
  ex = EarlyExitExecutor(model, [0.5, 0.5], "max_prob")
  with pytest.raises(ValueError, match=r"images must be \[n, 8, 8, 1\]"):
    ex.run(np.zeros((3, 8, 8, 3), np.float32))


def test_buckets():
  assert bucket_sizes(1) == (1,)
  assert bucket_sizes(256) == (1, 2, 4, 8, 16, 32, 64, 128, 256)
  assert bucket_sizes(100, 2) == (2, 4, 8, 16, 32, 64, 100)
  assert bucket_sizes(1, 2) == (2,)
  assert bucket_for(3, (2, 4, 8)) == 4 and bucket_for(1, (2, 4)) == 2
  with pytest.raises(ValueError, match="largest bucket"):
    bucket_for(9, (2, 4, 8))
  with pytest.raises(ValueError, match="batch_size"):
    bucket_sizes(0)


@pytest.mark.parametrize("measure", MEASURES)
def test_host_confidence_matches_and_is_row_independent(measure):
  import jax.numpy as jnp
  rng = np.random.default_rng(0)
  for scale in (0.5, 5.0, 1e4):
    logits = (scale * rng.standard_normal((203, 10))).astype(np.float32)
    host = host_confidence(logits, measure)
    assert host.dtype == np.float32
    np.testing.assert_allclose(host, np.asarray(confidence(jnp.asarray(logits), measure)),
                               atol=1e-6, rtol=1e-6)
    rows = np.array([host_confidence(logits[i:i + 1], measure)[0] for i in range(len(logits))])
    np.testing.assert_array_equal(rows, host)
    chunks = np.concatenate([host_confidence(logits[i:i + 6], measure) for i in range(0, 203, 6)])
    np.testing.assert_array_equal(chunks, host)
  with pytest.raises(ValueError, match="unknown confidence measure"):
    host_confidence(logits, "entropy")
