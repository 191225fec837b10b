"""Tests of dnas_ee.exits.confidence."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnas_ee.exits.confidence import CONFIDENCE_MEASURES, confidence


def reference(logits: np.ndarray, measure: str) -> float:
  """Float64 numpy reference of one row."""
  z = logits - logits.max()
  p = np.exp(z) / np.exp(z).sum()
  if measure == "max_prob":
    return float(p.max())
  if measure == "margin":
    top = np.sort(p)[::-1]
    return float(top[0] - top[1])
  return float(np.sum(p * np.log(p)))


def test_hand_computed_values():
  logits = jnp.log(jnp.array([0.6, 0.3, 0.1]))
  assert float(confidence(logits, "max_prob")) == pytest.approx(0.6, abs=1e-6)
  assert float(confidence(logits, "margin")) == pytest.approx(0.3, abs=1e-6)
  expected = 0.6 * np.log(0.6) + 0.3 * np.log(0.3) + 0.1 * np.log(0.1)
  assert float(confidence(logits, "neg_entropy")) == pytest.approx(expected, abs=1e-6)


def test_uniform_logits():
  logits = jnp.zeros(4)
  assert float(confidence(logits, "max_prob")) == pytest.approx(0.25)
  assert float(confidence(logits, "margin")) == pytest.approx(0.0, abs=1e-7)
  assert float(confidence(logits, "neg_entropy")) == pytest.approx(-np.log(4), abs=1e-6)


@pytest.mark.parametrize("measure", CONFIDENCE_MEASURES)
def test_matches_reference_and_shapes(measure):
  logits = np.random.default_rng(0).normal(size=(2, 3, 5)) * 3
  out = confidence(jnp.asarray(logits, jnp.float32), measure)
  assert out.shape == (2, 3)
  ref = np.array([[reference(row, measure) for row in b] for b in logits])
  np.testing.assert_allclose(np.asarray(out), ref, atol=1e-5)


@pytest.mark.parametrize("measure", CONFIDENCE_MEASURES)
def test_grad_matches_finite_differences(measure):
  rng = np.random.default_rng(1)
  for _ in range(3):
    x = rng.normal(size=6) * 2
    grad = np.asarray(jax.grad(lambda l: confidence(l, measure))(jnp.asarray(x, jnp.float32)))
    eps = 1e-6
    numeric = np.array([(reference(x + eps * e, measure) - reference(x - eps * e, measure))
                        / (2 * eps) for e in np.eye(len(x))])
    np.testing.assert_allclose(grad, numeric, atol=2e-5)


@pytest.mark.parametrize("measure", CONFIDENCE_MEASURES)
def test_jit_and_vmap_agree(measure):
  logits = jnp.asarray(np.random.default_rng(2).normal(size=(4, 7)), jnp.float32)
  eager = confidence(logits, measure)
  jitted = jax.jit(confidence, static_argnums=1)(logits, measure)
  mapped = jax.vmap(lambda l: confidence(l, measure))(logits)
  np.testing.assert_allclose(eager, jitted, atol=1e-6)
  np.testing.assert_allclose(eager, mapped, atol=1e-6)


@pytest.mark.parametrize("measure", CONFIDENCE_MEASURES)
def test_stable_for_large_logits(measure):
  sure = jnp.array([1e4, 0.0, -1e4])
  split = jnp.array([1e4, 1e4, 0.0])
  want_sure = {"max_prob": 1.0, "margin": 1.0, "neg_entropy": 0.0}[measure]
  want_split = {"max_prob": 0.5, "margin": 0.0, "neg_entropy": -np.log(2)}[measure]
  assert float(confidence(sure, measure)) == pytest.approx(want_sure, abs=1e-6)
  assert float(confidence(split, measure)) == pytest.approx(want_split, abs=1e-6)
  for logits in (sure, split, -sure):
    grad = jax.grad(lambda l: confidence(l, measure))(logits)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_neg_entropy_is_non_positive():
  logits = jnp.asarray(np.random.default_rng(3).normal(size=(100, 10)) * 5)
  assert np.all(np.asarray(confidence(logits, "neg_entropy")) <= 1e-7)


def test_integer_logits_are_accepted():
  assert float(confidence(jnp.array([0, 0]), "max_prob")) == pytest.approx(0.5)


def test_errors_name_the_problem():
  with pytest.raises(ValueError, match="max_prob.*margin.*neg_entropy"):
    confidence(jnp.zeros(3), "entropy")
  with pytest.raises(ValueError, match="at least 2 classes"):
    confidence(jnp.zeros((4, 1)), "margin")
