"""Scoring genotypes with the supernet's weights: batched equals one by one; costs are the
discrete network's."""
import jax
import numpy as np

from support.sweep import tiny_config
from dnas_ee.methods import GenotypeScorer, decode, one_hot_arch, sample_encodings, score_arch
from dnas_ee.pipeline import prepare_search
from dnas_ee.train.search import split_model


def test_batched_scores_equal_single_scores():
  config = tiny_config()
  run = prepare_search(config)
  graphdef = run.setup.graphdef
  weights = (graphdef, run.state.params, run.state.arch, run.state.stats)
  images, labels = run.data.val.images[:64], run.data.val.labels[:64]
  xs = sample_encodings(run.space, np.random.default_rng(0), 5)
  scorer = GenotypeScorer(weights, lambda x: one_hot_arch(run.space, decode(run.space, x)),
                          images, labels, run.setup.objective, run.ctx, batch=4)
  acc, cost = scorer(xs)
  assert acc.shape == cost.shape == (5,) and scorer.calls == 5
  for x, a, c in zip(xs, acc, cost):
    arch = one_hot_arch(run.space, decode(run.space, x))
    a1, _, c1 = jax.jit(score_arch, static_argnames=("graphdef", "spec", "train"))(
        graphdef, *weights[1:], arch, images, labels, spec=run.setup.objective, ctx=run.ctx)
    np.testing.assert_allclose([a, c], [float(a1), float(c1)], rtol=1e-5)
  # A repeated candidate is read from the cache, not rescored.
  again, _ = scorer(xs[:2])
  np.testing.assert_array_equal(again, acc[:2])
  assert len(scorer.cache) == len({tuple(x) for x in xs})
