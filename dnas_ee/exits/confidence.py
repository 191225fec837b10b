"""Exit confidence measures, shared by search, calibration and inference.

Every measure maps logits ``[..., K]`` to a score ``[...]``; a larger score
means "more confident", so an exit fires when ``confidence >= threshold``.

- ``max_prob``: the largest softmax probability, in ``[1/K, 1]``.
- ``margin``: top-1 minus top-2 softmax probability (the score margin of
  AEBNAS, reference B), in ``[0, 1]``; needs ``K >= 2``.
- ``neg_entropy``: ``sum_k p_k log p_k``, the negative Shannon entropy of the
  softmax in nats, in ``[-log K, 0]``.

All are computed from ``jax.nn.log_softmax`` so they stay finite for logits of
any magnitude (``1e4`` included) and their gradients flow through the logits
under ``jit``, ``grad`` and ``vmap``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

CONFIDENCE_MEASURES = ("max_prob", "margin", "neg_entropy")


def _as_float(logits: jax.Array) -> jax.Array:
  """``logits`` as a floating array (integer logits become float32)."""
  logits = jnp.asarray(logits)
  if not jnp.issubdtype(logits.dtype, jnp.floating):
    logits = logits.astype(jnp.float32)
  return logits


def max_prob(logits: jax.Array) -> jax.Array:
  """Largest softmax probability over the last axis.

  Example:
    >>> float(max_prob(jnp.array([0.0, 0.0])))
    0.5
  """
  return jnp.exp(jnp.max(jax.nn.log_softmax(_as_float(logits), axis=-1), axis=-1))


def margin(logits: jax.Array) -> jax.Array:
  """Top-1 minus top-2 softmax probability over the last axis.

  Example:
    >>> round(float(margin(jnp.log(jnp.array([0.6, 0.3, 0.1])))), 6)
    0.3
  """
  logits = _as_float(logits)
  if logits.ndim == 0 or logits.shape[-1] < 2:
    raise ValueError(f"the 'margin' confidence needs at least 2 classes on the last axis, got "
                     f"logits of shape {logits.shape}; use 'max_prob' for a single class")
  top2, _ = jax.lax.top_k(jax.nn.log_softmax(logits, axis=-1), 2)
  return jnp.exp(top2[..., 0]) - jnp.exp(top2[..., 1])


def neg_entropy(logits: jax.Array) -> jax.Array:
  """Negative entropy ``sum_k p_k log p_k`` of the softmax, in nats (``<= 0``).

  Example:
    >>> round(float(neg_entropy(jnp.zeros(4))), 6)  # -log 4
    -1.386294
  """
  logp = jax.nn.log_softmax(_as_float(logits), axis=-1)
  return jnp.sum(jnp.exp(logp) * logp, axis=-1)


_MEASURES = {"max_prob": max_prob, "margin": margin, "neg_entropy": neg_entropy}


def confidence(logits: jax.Array, measure: str) -> jax.Array:
  """Confidence of each prediction: logits ``[..., K]`` -> scores ``[...]``.

  Args:
    logits: unnormalized class scores, classes on the last axis.
    measure: one of ``CONFIDENCE_MEASURES`` (static under ``jit``).

  Returns:
    The score of each row; larger means more confident.

  Raises:
    ValueError: unknown ``measure``, or ``margin`` with fewer than 2 classes.

  Example:
    >>> logits = jnp.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    >>> confidence(logits, "max_prob").shape
    (2,)
  """
  fn = _MEASURES.get(measure)
  if fn is None:
    raise ValueError(f"unknown confidence measure {measure!r}; use one of {CONFIDENCE_MEASURES}")
  return fn(logits)
