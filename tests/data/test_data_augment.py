"""augment_batch: shapes, identity, per-sample flips, crops as windows of the padded image, jit."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnas_ee.data import augment_batch

N, H, W, C = 32, 6, 5, 2
IMAGES = jnp.asarray(np.random.default_rng(0).normal(size=(N, H, W, C)), jnp.float32)


def windows(image: np.ndarray, pad: int, mode: str) -> list[np.ndarray]:
  widths = ((pad, pad), (pad, pad), (0, 0))
  padded = np.pad(image, widths, mode="constant" if mode == "zeros" else "reflect")
  return [padded[dy:dy + H, dx:dx + W] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]


@pytest.mark.parametrize("pad, flip", [(0, False), (0, True), (1, False), (3, True)])
def test_shape_and_dtype_preserved(pad, flip):
  out = augment_batch(jax.random.key(0), IMAGES, pad=pad, flip=flip)
  assert out.shape == IMAGES.shape and out.dtype == IMAGES.dtype
  out16 = augment_batch(jax.random.key(0), IMAGES.astype(jnp.bfloat16), pad=pad, flip=flip)
  assert out16.dtype == jnp.bfloat16


def test_no_pad_no_flip_is_identity():
  assert augment_batch(jax.random.key(0), IMAGES, pad=0, flip=False) is IMAGES


def test_flip_mirrors_exactly_the_flipped_samples():
  out = np.asarray(augment_batch(jax.random.key(1), IMAGES, pad=0, flip=True))
  x = np.asarray(IMAGES)
  same = [np.array_equal(o, i) for o, i in zip(out, x)]
  mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x)]
  assert all(s != m for s, m in zip(same, mirrored))  # each sample is one or the other
  assert 0 < sum(mirrored) < N  # per-sample decisions, not one for the batch


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_crops_are_windows_of_the_padded_image(mode):
  pad = 2
  out = np.asarray(augment_batch(jax.random.key(2), IMAGES, pad=pad, flip=False, mode=mode))
  offsets = set()
  for o, image in zip(out, np.asarray(IMAGES)):
    hits = [k for k, win in enumerate(windows(image, pad, mode)) if np.array_equal(o, win)]
    assert hits, "the crop is not a window of the padded image"
    offsets.add(hits[0])
  assert len(offsets) > 5  # per-sample offsets


def test_crop_and_flip_together():
  out = np.asarray(augment_batch(jax.random.key(3), IMAGES, pad=1, flip=True))
  for o, image in zip(out, np.asarray(IMAGES)):
    candidates = windows(image, 1, "zeros") + windows(image[:, ::-1], 1, "zeros")
    assert any(np.array_equal(o, c) for c in candidates)


def test_jit_matches_eager_and_accepts_raw_keys():
  fn = jax.jit(functools.partial(augment_batch, pad=2, flip=True))
  key = jax.random.key(4)
  np.testing.assert_array_equal(fn(key, IMAGES), augment_batch(key, IMAGES, pad=2, flip=True))
  raw = fn(jax.random.PRNGKey(4), IMAGES)
  assert raw.shape == IMAGES.shape
  assert not np.array_equal(fn(jax.random.key(5), IMAGES), fn(key, IMAGES))


@pytest.mark.parametrize("kwargs, needle", [
    (dict(pad=-1, flip=False), "pad=-1 must be >= 0"),
    (dict(pad=1.5, flip=False), "must be a Python int"),
    (dict(pad=1, flip=False, mode="edge"), "mode='edge'"),
    (dict(pad=6, flip=False, mode="reflect"), "reflect padding of 6"),
])
def test_bad_arguments(kwargs, needle):
  with pytest.raises(ValueError, match=needle):
    augment_batch(jax.random.key(0), IMAGES, **kwargs)
  with pytest.raises(ValueError, match="NHWC"):
    augment_batch(jax.random.key(0), IMAGES[0], pad=1, flip=True)
