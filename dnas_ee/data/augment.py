"""On-device augmentation: pad + random crop and random horizontal flip, per sample.

Pure and jittable; ``pad``, ``flip`` and ``mode`` are static Python values, so
a jitted step that closes over them compiles once.
"""
from __future__ import annotations

import operator

import jax
import jax.numpy as jnp

PAD_MODES = ("zeros", "reflect")


def random_crop(rng: jax.Array, images: jax.Array, pad: int, mode: str = "zeros") -> jax.Array:
  """Pads each image by ``pad`` pixels per side and crops back at a random offset.

  Args:
    rng: PRNG key.
    images: [N, H, W, C].
    pad: pixels added on each side; offsets are uniform in ``[0, 2 * pad]``.
    mode: ``"zeros"`` (the padding is 0, i.e. the train mean once normalized) or
      ``"reflect"`` (mirror without repeating the edge; needs ``pad < H, W``).

  Returns:
    [N, H, W, C], each a window of its padded image.
  """
  n, h, w, c = images.shape
  widths = ((0, 0), (pad, pad), (pad, pad), (0, 0))
  padded = jnp.pad(images, widths) if mode == "zeros" else jnp.pad(images, widths, mode="reflect")
  offsets = jax.random.randint(rng, (n, 2), 0, 2 * pad + 1)

  def crop(image, offset):
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

  return jax.vmap(crop)(padded, offsets)


def random_flip(rng: jax.Array, images: jax.Array) -> jax.Array:
  """Mirrors each image left-right with probability 1/2."""
  flips = jax.random.bernoulli(rng, 0.5, (images.shape[0],))
  return jnp.where(flips[:, None, None, None], images[:, :, ::-1, :], images)


def augment_batch(rng: jax.Array, images: jax.Array, *, pad: int, flip: bool,
                  mode: str = "zeros") -> jax.Array:
  """Random crop after padding, then random horizontal flip, independently per sample.

  Args:
    rng: PRNG key (typed ``jax.random.key`` or raw ``PRNGKey``).
    images: [N, H, W, C], already normalized.
    pad: padding per side for the random crop; 0 disables cropping. Static.
    flip: whether to flip left-right with probability 1/2. Static.
    mode: padding, ``"zeros"`` (default, as in the usual CIFAR recipe) or
      ``"reflect"``. Static.

  Returns:
    Images of the same shape and dtype. With ``pad=0, flip=False`` the input itself.

  Example:
    >>> x = jnp.arange(2 * 4 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 4, 1)
    >>> augment_batch(jax.random.key(0), x, pad=1, flip=True).shape
    (2, 4, 4, 1)
  """
  if images.ndim != 4:
    raise ValueError(f"augment_batch needs NHWC images (4-D), got shape {images.shape}")
  try:
    pad = operator.index(pad)
  except TypeError as e:
    raise ValueError(f"pad={pad!r} must be a Python int (it is static under jit)") from e
  if pad < 0:
    raise ValueError(f"pad={pad} must be >= 0")
  if mode not in PAD_MODES:
    raise ValueError(f"mode={mode!r}: expected one of {PAD_MODES}")
  if mode == "reflect" and pad >= min(images.shape[1:3]):
    raise ValueError(f"reflect padding of {pad} needs images larger than {pad} pixels, got "
                     f"{images.shape[1:3]}; use mode='zeros' or a smaller pad")
  if pad == 0 and not flip:
    return images
  crop_rng, flip_rng = jax.random.split(rng)
  if pad:
    images = random_crop(crop_rng, images, pad, mode)
  if flip:
    images = random_flip(flip_rng, images)
  return images
