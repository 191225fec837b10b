"""Quantized layers (flax NNX) whose bit widths come from a mixture passed at call time."""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dnas_ee.models.conv import check_groups, conv2d, conv2d_autodiff, conv2d_windows
from dnas_ee.quant import mix_quantized_activations, mix_quantized_weights


CONV_IMPLS = {"lax": conv2d_autodiff, "switched": conv2d, "windows": conv2d_windows}


class ArchParam(nnx.Variable):
  """Architecture logits: trained on the validation split, apart from the weights."""


ACTIVATIONS = {"relu": jax.nn.relu, "relu6": jax.nn.relu6}


def scaled_normal(key: jax.Array, shape: tuple[int, ...], fan_in: int, gain: float) -> jax.Array:
  """Truncated-normal (+-2 sigma) init with variance ``gain / fan_in``, drawn on the host.

  Drawing with jax.random would compile one small program per distinct weight
  shape (tens of seconds for a supernet); numpy seeded from the key is instant.
  """
  seed = np.asarray(jax.random.key_data(key)).astype(np.uint64).tolist()
  rng = np.random.default_rng(seed)
  draws = rng.standard_normal(shape)
  bad = np.abs(draws) > 2
  while bad.any():
    draws[bad] = rng.standard_normal(int(bad.sum()))
    bad = np.abs(draws) > 2
  # 0.8796 is the std of a unit normal truncated at +-2 (what variance_scaling corrects for).
  return jnp.asarray(draws * np.sqrt(gain / fan_in) / 0.8796, jnp.float32)


# Clip of a Gaussian that minimizes the quantization MSE at b bits, in standard
# deviations (Banner et al., "ACIQ", 2019); widths above 8 bits keep the 8-bit clip.
_ACIQ_GAUSSIAN_CLIP = {2: 1.71, 3: 2.15, 4: 2.55, 5: 2.94, 6: 3.29, 7: 3.61, 8: 3.92}


def clip_ratios(bits: Sequence[int]) -> np.ndarray:
  """[num_bits] clip of each width relative to the 8-bit clip (ACIQ's Gaussian optimum).

  One PACT clip shared by every width would zero most activations at 2 bits
  (a 6.0 clip has a 2.0 step at 2 bits unsigned), penalizing low widths before
  the search has seen any data; scaling the shared clip per width keeps each
  width near its own optimum while a single parameter is learned.
  """
  top = _ACIQ_GAUSSIAN_CLIP[8]
  return np.asarray([_ACIQ_GAUSSIAN_CLIP.get(min(b, 8)) / top for b in bits], np.float32)


class ActQuant(nnx.Module):
  """Per-tensor activation fake quantization with a learned clip (PACT).

  The learned ``clip`` is the 8-bit clip; width b uses ``clip * clip_ratios(b)``.
  """

  def __init__(self, *, signed: bool, init_clip: float | None = None):
    self.signed = signed
    self.clip = nnx.Param(jnp.asarray(init_clip or (4.0 if signed else 6.0), jnp.float32))

  def __call__(self, x, bits: Sequence[int], probs):
    clips = self.clip[...] * jnp.asarray(clip_ratios(bits))
    return mix_quantized_activations(x, clips, bits, probs, signed=self.signed)


class QConv(nnx.Module):
  """NHWC convolution (SAME padding) with fake-quantized weights and, optionally, inputs.

  The weight mixture is formed before the convolution (one convolution whatever
  the number of candidate widths; see ``dnas_ee.quant``).
  """

  def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, groups: int = 1,
               signed_input: bool | None = None, impl: str = "lax", rngs: nnx.Rngs):
    # ``impl`` (``CONV_IMPLS``): 'lax', lax's convolution and gradient (the backbone: every
    # benchmark in the README was measured with it); 'switched', ``conv2d``, whose
    # hand-written gradient stays on XLA:CPU's fast path inside a ``lax.switch`` branch (a
    # candidate op of the sampled single-path search; at the top level the two are within
    # noise, experiments/benchmarks/plain_conv_ab.py); 'windows', ``conv2d_windows``, no
    # slow form at all but a longer compile (chosen for a frozen backbone's branches,
    # whose steps outnumber their compiles: docs/benchmarks.md).
    if impl not in CONV_IMPLS:
      raise ValueError(f"unknown convolution impl {impl!r}; use one of {tuple(CONV_IMPLS)}")
    self.impl = impl
    check_groups(cin, cout, groups)
    fan_in = kernel * kernel * cin // groups
    self.kernel = nnx.Param(scaled_normal(rngs.params(), (kernel, kernel, cin // groups, cout),
                                          fan_in, 2.0))
    self.stride, self.groups = stride, groups
    self.in_quant = None if signed_input is None else ActQuant(signed=signed_input)

  def __call__(self, x, bits: Sequence[int], probs):
    if self.in_quant is not None:
      x = self.in_quant(x, bits, probs)
    w = mix_quantized_weights(self.kernel[...], bits, probs)
    return CONV_IMPLS[self.impl](x, w, self.stride, self.groups)


class QDense(nnx.Module):
  """Dense layer with fake-quantized weights and inputs (inputs quantized unless told not)."""

  def __init__(self, cin: int, cout: int, *, signed_input: bool | None, rngs: nnx.Rngs):
    self.kernel = nnx.Param(scaled_normal(rngs.params(), (cin, cout), cin, 1.0))
    self.bias = nnx.Param(jnp.zeros((cout,), jnp.float32))
    self.in_quant = None if signed_input is None else ActQuant(signed=signed_input)

  def __call__(self, x, bits: Sequence[int], probs):
    if self.in_quant is not None:
      x = self.in_quant(x, bits, probs)
    return x @ mix_quantized_weights(self.kernel[...], bits, probs) + self.bias[...]


class BatchNorm(nnx.BatchNorm):
  """``nnx.BatchNorm`` (same variables, same numbers) whose training-mode update of the
  running statistics is cheap to trace.

  ``nnx.BatchNorm`` writes its statistics with ``self.mean[...] = ...``; under a trace
  that path asks the tracer for its ``sharding``, and the AttributeError JAX raises
  builds its message by walking the whole jaxpr traced so far (``_origin_msg``): the
  trace becomes quadratic in the network's size (16 of the digits search step's 29 s
  of tracing, under cProfile). ``set_value`` replaces the value directly.
  """

  def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
    use_running_average = (self.use_running_average if use_running_average is None
                           else use_running_average)
    if use_running_average or mask is not None or self.axis_name is not None:
      return super().__call__(x, use_running_average, mask=mask)
    # flax's _compute_stats (fast variance) and _normalize, feature axis last, float32.
    axes = tuple(range(x.ndim - 1))
    x2 = jax.lax.square(x)
    mean, mean2 = x.mean(axes), x2.mean(axes)
    var = jnp.maximum(0.0, mean2 - jax.lax.square(mean))
    m = self.momentum
    self.mean.set_value(jax.lax.stop_gradient(m * self.mean[...] + (1 - m) * mean))
    self.var.set_value(jax.lax.stop_gradient(m * self.var[...] + (1 - m) * var))
    stats_shape = (1,) * (x.ndim - 1) + (x.shape[-1],)   # flax's op order and shapes: the same bits
    mean, var = mean.reshape(stats_shape), var.reshape(stats_shape)
    y = x - mean
    mul = jax.lax.rsqrt(var + self.epsilon)
    if self.scale is not None:
      mul *= self.scale[...].reshape(stats_shape)
    y *= mul
    if self.bias is not None:
      y += self.bias[...].reshape(stats_shape)
    return y


def batch_norm(features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
  return BatchNorm(features, momentum=0.9, epsilon=1e-5, rngs=rngs)


def pool(x, kind: str, kernel: int, stride: int):
  """SAME max/average pooling (averages count padded zeros, as the LUT's ops do)."""
  window, strides = (1, kernel, kernel, 1), (1, stride, stride, 1)
  if kind == "maxpool":
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, strides, "SAME")
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, "SAME")
  return total / (kernel * kernel)


def resize(x, res: int):
  """Resizes NHWC ``x`` to ``res x res``: area pooling down, nearest copy up."""
  h = x.shape[1]
  if h == res:
    return x
  if h > res:
    f = h // res
    if h % res == 0 and x.shape[2] % res == 0:
      # Non-overlapping f x f means as a reshape and a mean: the same numbers as the
      # average pool, and XLA:CPU runs it (and its gradient) as a fused reduction, where
      # reduce_window was 6% of a ResNet-20 search step.
      b, _, w, c = x.shape
      return x.reshape(b, res, f, w // f, f, c).mean(axis=(2, 4))
    return pool(x, "avgpool", f, f)
  f = res // h
  return jnp.repeat(jnp.repeat(x, f, axis=1), f, axis=2)
