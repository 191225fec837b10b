"""batch_indices / epoch_permutation: pure functions of (seed, step), epochs, resume."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dnas_ee.data import batch_indices, epoch_permutation
from dnas_ee.data import batching


def test_deterministic_and_seeded():
  np.testing.assert_array_equal(batch_indices(3, 17, 100, 8), batch_indices(3, 17, 100, 8))
  assert not np.array_equal(batch_indices(3, 17, 100, 8), batch_indices(4, 17, 100, 8))
  assert not np.array_equal(epoch_permutation(0, 0, 50), epoch_permutation(0, 1, 50))


@pytest.mark.parametrize("n, batch_size", [(100, 10), (103, 10), (64, 64), (7, 3)])
def test_every_index_at_most_once_per_epoch(n, batch_size):
  steps = n // batch_size
  for epoch in range(3):
    seen = np.concatenate([batch_indices(0, epoch * steps + k, n, batch_size)
                           for k in range(steps)])
    assert len(seen) == steps * batch_size == len(np.unique(seen))
    assert seen.min() >= 0 and seen.max() < n
    np.testing.assert_array_equal(seen, epoch_permutation(0, epoch, n)[:len(seen)])
    if n % batch_size == 0:
      np.testing.assert_array_equal(np.sort(seen), np.arange(n))


def test_resume_sees_the_same_batches():
  n, batch_size = 53, 8
  in_a_loop = [batch_indices(11, step, n, batch_size) for step in range(40)]
  batching._permutation.cache_clear()  # a fresh process, resumed at step k
  for k in (0, 5, 6, 13, 39):
    np.testing.assert_array_equal(batch_indices(11, k, n, batch_size), in_a_loop[k])


def test_results_are_read_only():
  with pytest.raises(ValueError):
    batch_indices(0, 0, 10, 2)[0] = 5


@pytest.mark.parametrize("args, needle", [
    ((0, 0, 10, 11), "batch_size=11 is larger than the split it draws from \\(10 examples\\)"),
    ((0, 0, 10, 0), "batch_size=0 must be >= 1"),
    ((0, -1, 10, 2), "step=-1"),
    ((-1, 0, 10, 2), "seed=-1"),
])
def test_bad_arguments(args, needle):
  with pytest.raises(ValueError, match=needle):
    batch_indices(*args)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 300), data=st.data())
def test_batches_are_valid(seed, n, data):
  batch_size = data.draw(st.integers(1, n))
  step = data.draw(st.integers(0, 10_000))
  idx = batch_indices(seed, step, n, batch_size)
  assert idx.shape == (batch_size,) and len(np.unique(idx)) == batch_size
  assert idx.min() >= 0 and idx.max() < n
