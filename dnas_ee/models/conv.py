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


def _windows(x, k: int, stride: int) -> list:
  """The ``k x k`` SAME windows of NHWC ``x``: ``k * k`` arrays ``[B, Ho, Wo, C]``, row-major."""
  h, wd = x.shape[1:3]
  (ho, lo_h, hi_h), (wo, lo_w, hi_w) = _same_padding(h, k, stride), _same_padding(wd, k, stride)
  xp = jnp.pad(x, [(0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0)])
  return [xp[:, i:i + (ho - 1) * stride + 1:stride, j:j + (wo - 1) * stride + 1:stride, :]
          for i in range(k) for j in range(k)]


def _im2col(x, k: int, stride: int):
  """``[B, Ho, Wo, k k C]``: the windows side by side (the rows of a convolution's matrix)."""
  windows = _windows(x, k, stride)
  return windows[0] if k == 1 else jnp.concatenate(windows, axis=-1)


def depthwise_windows(x: jax.Array, w: jax.Array, stride: int = 1) -> jax.Array:
  """A depthwise SAME convolution (``w``: ``[k, k, 1, C]``) as ``k x k`` multiply-adds."""
  k = w.shape[0]
  taps = w.reshape(k * k, w.shape[-1])
  windows = _windows(x, k, stride)
  out = windows[0] * taps[0]
  for t in range(1, k * k):
    out = out + windows[t] * taps[t]
  return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def dense_conv_matmul_grads(x: jax.Array, w: jax.Array, stride: int = 1) -> jax.Array:
  """A dense SAME convolution (lax's, canonical: XLA:CPU's fast kernel) whose gradients are
  matrix products of ``x``'s windows: ``dw = cols^T g``, ``dx`` the windows of ``g W^T``
  added back in place."""
  return conv2d_autodiff(x, w, stride, 1)


def _dense_fwd(x, w, stride):
  return conv2d_autodiff(x, w, stride, 1), (x, w)


def _dense_bwd(stride, residuals, g):
  x, w = residuals
  k, cin, cout = w.shape[0], w.shape[2], w.shape[3]
  cols, to_cols = jax.vjp(lambda x: _im2col(x, k, stride), x)
  flat = w.reshape(k * k * cin, cout)
  dw = jnp.einsum("bhwi,bhwo->io", cols, g).reshape(w.shape)
  (dx,) = to_cols(jnp.einsum("bhwo,io->bhwi", g, flat))
  return dx, dw


dense_conv_matmul_grads.defvjp(_dense_fwd, _dense_bwd)


def conv2d_windows(x: jax.Array, w: jax.Array, stride: int = 1, groups: int = 1) -> jax.Array:
  """``conv2d`` with no convolution that XLA:CPU runs off its fast path: a depthwise one
  as ``k x k`` multiply-adds of ``x``'s windows (``depthwise_windows``), a dense one as
  lax's forward convolution with gradients as matrix products of the windows
  (``dense_conv_matmul_grads``).

  Why: XLA:CPU runs a convolution fast only in its canonical form, and it rewrites depthwise
  convolutions and the gradients of dense ones (input dilation for a stride, kernel
  reversal, feature groups) into forms it runs on its generic loop emitter, 100-1000x
  slower than the same work as a plain convolution: a frozen ResNet-20 exit search spent
  most of its step in them (docs/benchmarks.md). Slices, products and sums, and their
  gradients, have no slow form, at the top level of a program or inside a ``lax.switch``.
  """
  if groups > 1:
    return depthwise_windows(x, w, stride)
  return dense_conv_matmul_grads(x, w, stride)
