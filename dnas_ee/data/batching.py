"""Host-side batching: which examples form the batch of a global step.

Batches are a pure function of ``(seed, step, n, batch_size)``: epochs drop the
remainder, and epoch ``e`` visits ``epoch_permutation(seed, e, n)`` in order.
A run resumed at step k therefore sees exactly the batches it would have seen,
with no iterator state to checkpoint.
"""
from __future__ import annotations

import functools

import numpy as np


def _check_nonnegative(**values: int) -> None:
  for key, value in values.items():
    if value < 0:
      raise ValueError(f"{key}={value} must be >= 0")


@functools.lru_cache(maxsize=8)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  perm = np.random.default_rng((seed, epoch)).permutation(n)
  perm.setflags(write=False)  # cached and shared between callers
  return perm


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  """The order in which epoch ``epoch`` visits ``n`` examples.

  Args:
    seed: data-order seed (>= 0).
    epoch: epoch number (>= 0).
    n: number of examples.

  Returns:
    A read-only int64 permutation of ``range(n)``, the same on every call.

  Example:
    >>> sorted(epoch_permutation(0, 3, 5).tolist())
    [0, 1, 2, 3, 4]
  """
  _check_nonnegative(seed=seed, epoch=epoch, n=n)
  return _permutation(int(seed), int(epoch), int(n))


def batch_indices(seed: int, step: int, n: int, batch_size: int) -> np.ndarray:
  """Indices of the examples in the batch of global step ``step``.

  Epochs drop the remainder: ``steps_per_epoch = n // batch_size``, and step
  ``step`` takes slice ``step % steps_per_epoch`` of the permutation of epoch
  ``step // steps_per_epoch``. So every example appears at most once per epoch,
  and all but ``n % batch_size`` of them exactly once.

  Args:
    seed: data-order seed (>= 0).
    step: global step (>= 0).
    n: size of the split.
    batch_size: examples per batch, in ``[1, n]``.

  Returns:
    Read-only int64 [batch_size].

  Raises:
    ValueError: ``batch_size`` is not in ``[1, n]``, or a negative seed or step.

  Example:
    >>> batch_indices(0, 7, 10, 4).shape
    (4,)
  """
  _check_nonnegative(seed=seed, step=step)
  if batch_size < 1:
    raise ValueError(f"batch_size={batch_size} must be >= 1")
  if batch_size > n:
    raise ValueError(f"batch_size={batch_size} is larger than the split it draws from ({n} "
                     "examples); lower the batch size, or use more data (data.limit_train, "
                     "data.val_fraction)")
  epoch, k = divmod(int(step), n // batch_size)
  return epoch_permutation(seed, epoch, n)[k * batch_size:(k + 1) * batch_size]
