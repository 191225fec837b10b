"""NHWC convolution (SAME padding) whose gradients are written as forward convolutions
(used by the exit-branch candidates, ``QConv(switched=True)``).

Why: inside a ``lax.switch``/``lax.cond`` branch (the sampled single-path search runs
each exit-branch slot as one), XLA:CPU leaves the convolutions that autodiff writes
for the backward pass in their transposed dimension order (kernel ``01oi``, or
batch and features swapped for the filter gradient) and runs them on its generic
loop emitter: 10x (input gradient) and 50x (filter gradient) slower than the same
convolution at the top level of the program, where XLA inserts the transposes
itself. This VJP states both gradients as ``NHWC x HWIO -> NHWC`` convolutions on
explicitly transposed operands, the canonical form XLA hands to its fast
convolution kernels wherever the convolution sits; the numbers are those of
``lax.conv_general_dilated``'s own gradient (``tests/models/test_conv.py``).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

_DIMS = ("NHWC", "HWIO", "NHWC")


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
  """(output size, low pad, high pad) of a SAME convolution along one axis."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return out, total // 2, total - total // 2


def conv2d_autodiff(x: jax.Array, w: jax.Array, stride: int = 1, groups: int = 1) -> jax.Array:
  """The same convolution with lax's own gradient (faster at a program's top level)."""
  return jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=_DIMS,
                                      feature_group_count=groups)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: jax.Array, w: jax.Array, stride: int = 1, groups: int = 1) -> jax.Array:
  """``lax.conv_general_dilated(x, w, stride, 'SAME')`` on NHWC ``x`` and HWIO ``w``.

  ``groups`` is 1 or the channel count (a depthwise convolution, one filter per channel).
  """
  return conv2d_autodiff(x, w, stride, groups)


def _conv2d_fwd(x, w, stride, groups):
  return conv2d_autodiff(x, w, stride, groups), (x, w)


def _conv2d_bwd(stride, groups, residuals, g):
  x, w = residuals
  k, s = w.shape[0], stride
  axes = [(n, *_same_padding(n, k, s)) for n in x.shape[1:3]]
  # Input gradient: the output gradient, dilated by the stride, correlated with the
  # flipped kernel (input and output channels swapped unless depthwise).
  flipped = jnp.flip(w, (0, 1))
  kernel = flipped if groups > 1 else flipped.transpose(0, 1, 3, 2)
  pad_in = [(k - 1 - lo, n - 1 - (out - 1) * s + lo) for n, out, lo, _ in axes]
  dx = jax.lax.conv_general_dilated(g, kernel, (1, 1), pad_in, lhs_dilation=(s, s),
                                    dimension_numbers=_DIMS, feature_group_count=groups)
  # Filter gradient: dw[i, j, c, o] = sum_{b, p, q} x_pad[b, s p + i, s q + j, c] g[b, p, q, o].
  pad_w = [(lo, k - n - lo + (out - 1) * s) for n, out, lo, _ in axes]
  if groups == 1:   # channels as the batch, the batch as the channels: one convolution
    dw = jax.lax.conv_general_dilated(x.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3), (1, 1),
                                      pad_w, rhs_dilation=(s, s), dimension_numbers=_DIMS)
    dw = dw.transpose(1, 2, 0, 3)
  else:             # depthwise: k x k window sums (a grouped filter gradient has no canonical form)
    xp = jnp.pad(x, [(0, 0), *[(lo, max(hi, 0)) for lo, hi in pad_w], (0, 0)])
    ho, wo = g.shape[1:3]
    dw = jnp.stack([jnp.stack([
        jnp.sum(xp[:, i:i + (ho - 1) * s + 1:s, j:j + (wo - 1) * s + 1:s, :] * g, axis=(0, 1, 2))
        for j in range(k)]) for i in range(k)])[:, :, None, :]
  return dx, dw


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def check_groups(cin: int, cout: int, groups: int) -> None:
  """``conv2d`` supports dense (1) and depthwise (``groups == cin == cout``) convolutions."""
  if groups != 1 and not groups == cin == cout:
    raise ValueError(f"conv2d supports groups=1 or depthwise groups == cin == cout; got "
                     f"groups={groups}, cin={cin}, cout={cout}")
