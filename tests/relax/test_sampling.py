"""The sampled single-path relaxation (GDAS's straight-through Gumbel estimator): its
gradient's direction and its samples' distribution."""
import jax
import jax.numpy as jnp
import numpy as np

from dnas_ee.relax import sample_one_hot

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
