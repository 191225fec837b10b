"""Genotype encodings of the baselines and the one-hot architecture of a genotype."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings, strategies as st

from support.sweep import tiny_space
from dnas_ee.methods import check_genotype, decode, encode, encoding_bounds, one_hot_arch
from dnas_ee.models.supernet import Supernet, relaxed_architecture
from dnas_ee.relax import Relaxation
from dnas_ee.space.genotype import derive_genotype

SPACE = tiny_space()


def _encoding(draw_ints, multicore):
  bounds = encoding_bounds(SPACE, multicore)
  return np.array([v % b for v, b in zip(draw_ints, bounds)], np.int64)


def _canonical(x, multicore):
  """Choices of positions without an exit set to 0 (as ``encode`` writes them)."""
  return encode(SPACE, decode(SPACE, x, multicore), multicore)


def _logits_of(x, multicore):
  """Architecture logits whose argmax (and sign) is the encoding ``x``."""
  p, d, k, nb, n = len(SPACE.branches), SPACE.depth, SPACE.num_ops, SPACE.num_bits, SPACE.num_blocks
  cores = np.zeros(p, np.int64) if not multicore else None
  gates, ops, bb, br, *rest = np.split(x, np.cumsum([p, p * d, n, p] if multicore else [p, p * d, n]))
  cores = rest[0] if multicore else cores
  eye = lambda idx, m: 3.0 * np.eye(m, dtype=np.float32)[idx] - 1.0
  return dict(exit_logits=np.where(gates > 0, 2.0, -2.0).astype(np.float32),
              op_logits=eye(ops.reshape(p, d), k), backbone_bit_logits=eye(bb, nb),
              branch_bit_logits=eye(br, nb),
              alloc_logits=np.where(cores > 0, 1.5, -1.5).astype(np.float32))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=64, max_size=64), st.booleans())
def test_encodings_decode_to_valid_genotypes_and_back(ints, multicore):
  x = _encoding(ints, multicore)
  genotype = decode(SPACE, x, multicore)
  check_genotype(SPACE, genotype)
  assert decode(SPACE, encode(SPACE, genotype, multicore), multicore) == genotype


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=64, max_size=64), st.booleans())
def test_one_hot_arch_is_the_hard_relaxation_of_matching_logits(ints, multicore):
  x = _canonical(_encoding(ints, multicore), multicore)
  genotype = decode(SPACE, x, multicore)
  logits = _logits_of(x, multicore)
  model = Supernet(SPACE, rngs=nnx.Rngs(0))
  for name, value in logits.items():
    getattr(model, name)[...] = jnp.asarray(value)
  # The logits derive the same genotype, and their hard relaxation is its one-hot arch.
  assert derive_genotype(SPACE, logits["exit_logits"], logits["op_logits"],
                         logits["backbone_bit_logits"], logits["branch_bit_logits"],
                         alloc_logits=logits["alloc_logits"] if multicore else None) == genotype
  hard = relaxed_architecture(model, Relaxation(hard=True))
  mine = one_hot_arch(SPACE, genotype)
  if not multicore:   # single core: no branch is on another core
    assert not np.asarray(mine.parallel).any()
    hard = dataclasses.replace(hard, parallel=jnp.zeros_like(hard.parallel))
  for field in ("gates", "ops", "backbone_bits", "branch_bits", "parallel"):
    np.testing.assert_array_equal(np.asarray(getattr(mine, field)), np.asarray(getattr(hard, field)))


def test_supernet_at_one_hot_arch_equals_hard_relaxation():
  x = _canonical(np.array([1, 1] + [1, 3, 0, 2] + [2, 1, 0] + [1, 2]), False)
  genotype = decode(SPACE, x)
  model = Supernet(SPACE, rngs=nnx.Rngs(1))
  for name, value in _logits_of(x, False).items():
    getattr(model, name)[...] = jnp.asarray(value)
  images = jax.random.uniform(jax.random.key(0), (8, 8, 8, 1))
  forward = nnx.jit(lambda m, arch: m(images, arch, train=False))
  ours = forward(model, one_hot_arch(SPACE, genotype))
  hard = forward(model, relaxed_architecture(model, Relaxation(hard=True)))
  for a, b in zip(ours, hard):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_decode_rejects_out_of_range():
  bounds = encoding_bounds(SPACE)
  with pytest.raises(ValueError, match="outside the bounds"):
    decode(SPACE, bounds)
