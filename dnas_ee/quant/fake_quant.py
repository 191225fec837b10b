"""Fake quantization: weights per output channel, activations per tensor, STE gradients.

Weights use symmetric per-channel quantization with the scale taken from the
channel's max |w| (held constant for the gradient, so the straight-through
gradient with respect to the weights is exactly the identity). Activations use a
learned clipping value ``clip`` per tensor (PACT, Choi et al. 2018): unsigned
``[0, clip]`` after a ReLU, symmetric ``[-clip, clip]`` otherwise; the gradient
reaches ``clip`` through both the clipping and the step size (as in LSQ).

A bit-width mixture mixes the fake-quantized copies *before* the convolution:
``conv(sum_a p_a Q_a(x), sum_w p_w Q_w(W)) = sum_a sum_w p_a p_w conv(Q_a(x), Q_w(W))``
by bilinearity, i.e. it is exactly the mixture over (activation bits, weight
bits) pairs drawn independently from ``p``, at the price of one convolution.
At a one-hot ``p`` it is the discrete network.

A ``SampledWidth`` (the single-path search's one-hot sample) instead quantizes at the
sampled width alone, one pass over the tensor instead of one per candidate width.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp

MIN_BITS = 2   # symmetric quantization needs at least the levels {-1, 0, 1}
MAX_BITS = 32


def check_bits(bits: Sequence[int], where: str = "bits") -> tuple[int, ...]:
  """Validates a list of candidate bit widths; returns it as a sorted tuple."""
  bits = tuple(bits)
  if not bits:
    raise ValueError(f"{where} is empty: give at least one bit width, e.g. (2, 4, 8)")
  for b in bits:
    if isinstance(b, bool) or not isinstance(b, int) or not MIN_BITS <= b <= MAX_BITS:
      raise ValueError(
          f"impossible bit width {b!r} in {where}: bit widths must be integers in "
          f"[{MIN_BITS}, {MAX_BITS}] (e.g. 2, 4, 8)")
  if len(set(bits)) != len(bits):
    raise ValueError(f"duplicated bit width in {where}={bits}")
  return tuple(sorted(bits))


def ste_round(x: jax.Array) -> jax.Array:
  """Rounds in the forward pass, passes the gradient straight through."""
  return x + jax.lax.stop_gradient(jnp.round(x) - x)


def quantize_weights(w: jax.Array, bits: int) -> jax.Array:
  """Symmetric per-output-channel fake quantization (output channels on the last axis).

  Example:
    >>> [round(v, 4) for v in quantize_weights(jnp.array([[0.7], [-0.33], [0.12]]), 4)[:, 0].tolist()]
    [0.7, -0.3, 0.1]
  """
  max_abs = jnp.max(jnp.abs(w), axis=tuple(range(w.ndim - 1)), keepdims=True)
  return _quantize_weights_at(w, max_abs, None, 2.0**(bits - 1) - 1)


def quantize_activations(x: jax.Array, clip: jax.Array, bits: int, *, signed: bool) -> jax.Array:
  """Per-tensor fake quantization of activations with a learned clipping value."""
  return _quantize_activations_at(x, None, clip, _levels((bits,), signed)[0], signed=signed)


@dataclasses.dataclass(frozen=True)
class SampledWidth:
  """A sampled bit width: ``one_hot`` [num_bits] is one in value at the sampled width,
  with a straight-through gradient to every width's logit (``dnas_ee.relax.sample_one_hot``).

  The mixtures below compute the quantized copy at that width only (one pass over the
  tensor instead of ``num_bits``), with the mixture's own gradient at that one-hot.
  """
  one_hot: jax.Array


jax.tree_util.register_dataclass(SampledWidth, data_fields=["one_hot"], meta_fields=[])


def _quantize_weights_at(w, max_abs, _, qmax):
  """``quantize_weights`` at ``qmax`` levels (may be traced), the channels' max |w| given."""
  scale = jax.lax.stop_gradient(jnp.maximum(max_abs, 1e-8) / qmax)
  return ste_round(w / scale) * scale


def _quantize_activations_at(x, _, clip, levels, *, signed: bool):
  """``quantize_activations`` at ``levels`` levels (may be traced)."""
  clip = jnp.abs(clip) + 1e-6
  clipped = jnp.clip(x, -clip, clip) if signed else jnp.clip(x, 0.0, clip)
  step = clip / levels
  return ste_round(clipped / step) * step


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _at_sampled_width(quantize, x, aux, clips, levels, one_hot):
  """``sum_j one_hot[j] * quantize(x, aux, clips[j], levels[j])`` at a one-hot ``one_hot``,
  computing the sampled width's copy alone (``aux``: the weights' max |w|, held constant).

  The gradient is the mixture's, exactly: ``x`` and ``clips[k]`` get the sampled width's
  straight-through gradient, and every width's weight ``one_hot[j]`` gets
  ``<g, quantize(x, clips[j], levels[j])>``, recomputed in the backward pass as one
  reduction per width (no stacked copy of ``x`` is stored). Only differences between
  widths reach the logits through the softmax, so without these terms (GDAS's
  selected-only route) the bit logits would learn from nothing but the cost.
  """
  k = jnp.argmax(one_hot)
  return quantize(x, aux, clips[k], levels[k])


def _at_sampled_width_fwd(quantize, x, aux, clips, levels, one_hot):
  return (_at_sampled_width(quantize, x, aux, clips, levels, one_hot),
          (x, aux, clips, levels, one_hot))


def _at_sampled_width_bwd(quantize, residuals, g):
  x, aux, clips, levels, one_hot = residuals
  k = jnp.argmax(one_hot)
  _, vjp = jax.vjp(lambda x, c: quantize(x, aux, c, levels[k]), x, clips[k])
  g_x, g_clip = vjp(g)
  g_one_hot = jnp.stack([jnp.sum(g * quantize(x, aux, clips[j], levels[j]))
                         for j in range(one_hot.shape[0])])
  return (g_x, jnp.zeros_like(aux), jnp.zeros_like(clips).at[k].set(g_clip),
          jnp.zeros_like(levels), g_one_hot.astype(one_hot.dtype))


_at_sampled_width.defvjp(_at_sampled_width_fwd, _at_sampled_width_bwd)


def _levels(bits: Sequence[int], signed: bool) -> list[float]:
  """Quantization levels of each candidate width."""
  return [2.0**(b - 1) - 1 if signed else 2.0**b - 1 for b in bits]


def mix_quantized_weights(w: jax.Array, bits: Sequence[int], probs: jax.Array) -> jax.Array:
  """``sum_b probs[b] * quantize_weights(w, bits[b])``, summed over the widths
  (the sampled width alone when ``probs`` is a ``SampledWidth``)."""
  if len(bits) == 1:
    return quantize_weights(w, bits[0])
  max_abs = jnp.max(jnp.abs(w), axis=tuple(range(w.ndim - 1)), keepdims=True)
  if isinstance(probs, SampledWidth):
    return _at_sampled_width(_quantize_weights_at, w, max_abs, jnp.zeros(len(bits)),
                             jnp.asarray(_levels(bits, True)), probs.one_hot)
  return sum(probs[j] * _quantize_weights_at(w, max_abs, None, qmax)
             for j, qmax in enumerate(_levels(bits, signed=True)))


def mix_quantized_activations(x: jax.Array, clip: jax.Array, bits: Sequence[int],
                              probs: jax.Array, *, signed: bool) -> jax.Array:
  """``sum_b probs[b] * quantize_activations(x, clip[b], bits[b])``.

  ``clip``: a scalar shared by every width, or one clip per width ``[num_bits]``.
  A ``SampledWidth`` ``probs`` quantizes at the sampled width alone.
  """
  clip = jnp.broadcast_to(jnp.asarray(clip, jnp.float32), (len(bits),))
  if len(bits) == 1:
    return quantize_activations(x, clip[0], bits[0], signed=signed)
  quantize = functools.partial(_quantize_activations_at, signed=signed)
  if isinstance(probs, SampledWidth):
    return _at_sampled_width(quantize, x, jnp.zeros(()), clip, jnp.asarray(_levels(bits, signed)),
                             probs.one_hot)
  # A sum of the widths' copies, not a tensordot over a stacked [num_bits, ...] copy:
  # XLA fuses the sum into one pass (1.35x faster forward + backward on a ResNet-20
  # activation at 3 widths, experiments/benchmarks/switch_kernels.py).
  return sum(probs[j] * quantize(x, None, clip[j], levels)
             for j, levels in enumerate(_levels(bits, signed)))
