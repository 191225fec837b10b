"""Exit confidence measures, shared by search, calibration and inference.

Every measure maps logits ``[..., K]`` to a score ``[...]``; a larger score
means "more confident", so an exit fires when ``confidence >= threshold``.

- ``max_prob``: the largest softmax probability, in ``[1/K, 1]``.
- ``margin``: top-1 minus top-2 softmax probability (the score margin of
  AEBNAS, reference B), in ``[0, 1]``; needs ``K >= 2``.
- ``neg_entropy``: ``sum_k p_k log p_k``, the negative Shannon entropy of the
  softmax in nats, in ``[-log K, 0]``.

``host_confidence`` computes the same measures in numpy, row by row in float64,
for the host-side exit decisions of inference (see there why).

All are computed from ``jax.nn.log_softmax`` so they stay finite for logits of
any magnitude (``1e4`` included) and their gradients flow through the logits
under ``jit``, ``grad`` and ``vmap``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

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


def confidence_range(measure: str, num_classes: int) -> tuple[float, float]:
  """``(lo, hi)``: the values ``measure`` takes over ``num_classes`` classes (a threshold
  outside them lets every sample out, or none).

  Example:
    >>> confidence_range("max_prob", 10)
    (0.1, 1.0)
  """
  if measure == "max_prob":
    return 1.0 / num_classes, 1.0
  if measure == "margin":
    return 0.0, 1.0
  if measure == "neg_entropy":
    return -float(np.log(num_classes)), 0.0
  raise ValueError(f"unknown confidence measure {measure!r}; use one of {CONFIDENCE_MEASURES}")


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


def host_confidence(logits, measure: str) -> np.ndarray:
  """The same measures on the host: float32 scores from logits ``[..., K]``, in numpy.

  Inference decisions (``conf >= threshold``) are made on the host, where the
  thresholds live. A jitted ``confidence`` may round a row differently depending
  on how many rows its program holds and where the row sits (vectorized and
  remainder loops), so a sample's score could change in the last bit between a
  batch of 1 and a batch of 256, enough to flip a sample lying exactly on a
  calibrated threshold (thresholds *are* observed calibration scores). Here every
  row is computed alone in float64 (a row's result does not depend on the others)
  and rounded to float32, the dtype of ``confidence``; the two agree to float32
  rounding.

  Args:
    logits: array-like ``[..., K]`` (any float dtype).
    measure: one of ``CONFIDENCE_MEASURES``.

  Returns:
    float32 numpy array ``[...]``.

  Example:
    >>> host_confidence(np.array([[0.0, 0.0]]), "max_prob").tolist()
    [0.5]
  """
  if measure not in _MEASURES:
    raise ValueError(f"unknown confidence measure {measure!r}; use one of {CONFIDENCE_MEASURES}")
  z = np.asarray(logits, dtype=np.float64)
  if z.ndim == 0:
    raise ValueError("host_confidence needs logits with the classes on the last axis, got a scalar")
  if measure == "margin" and z.shape[-1] < 2:
    raise ValueError(f"the 'margin' confidence needs at least 2 classes on the last axis, got "
                     f"logits of shape {z.shape}; use 'max_prob' for a single class")
  z = z - z.max(axis=-1, keepdims=True)            # the top class has z = 0
  e = np.exp(z)
  total = e.sum(axis=-1)                           # >= 1
  if measure == "max_prob":
    score = 1.0 / total
  elif measure == "margin":
    second = np.partition(z, -2, axis=-1)[..., -2]
    score = (1.0 - np.exp(second)) / total
  else:
    score = (e * z).sum(axis=-1) / total - np.log(total)
  return score.astype(np.float32)
