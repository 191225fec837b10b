"""Seeded, class-stratified splits and train-split normalization.

Every split is a pure function of the labels and the seed, so the same config
gives bit-identical arrays on every machine and every resume.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

# Values per chunk when computing statistics (bounds the float64 temporaries to 8 MiB).
_STATS_CHUNK = 1 << 20


def stratified_order(labels: np.ndarray, seed: int | Sequence[int]) -> np.ndarray:
  """A seeded permutation of ``range(len(labels))`` whose every prefix is stratified.

  Each class is shuffled, its k-th member gets the key ``(k + u_c) / n_c`` (``u_c``
  a random offset in [0, 1)), and all examples are sorted by key. A prefix of
  length m then holds ``m * n_c / N`` examples of class c, give or take one.

  Args:
    labels: integer labels [N].
    seed: an int, or a sequence of ints (``np.random.default_rng`` entropy).

  Returns:
    int64 [N], a permutation.

  Example:
    >>> order = stratified_order(np.array([0, 0, 1, 1]), seed=0)
    >>> sorted(np.array([0, 0, 1, 1])[order[:2]].tolist())
    [0, 1]
  """
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  keys = np.empty(labels.shape[0], np.float64)
  for c in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == c))
    keys[members] = (np.arange(members.size) + rng.random()) / members.size
  return np.argsort(keys, kind="stable")


def split_sizes(n: int, fractions: Sequence[float]) -> list[int]:
  """Sizes of the carved-out parts: ``round(f * n)``, at least 1 where ``f > 0``."""
  return [max(1, round(f * n)) if f > 0 else 0 for f in fractions]


def carve(labels: np.ndarray, fractions: Sequence[float], seed: int | Sequence[int],
          names: Sequence[str]) -> list[np.ndarray]:
  """Carves stratified parts out of a set; the rest is returned last.

  Args:
    labels: integer labels [N] of the set being split.
    fractions: the fraction of N for each carved part, each in [0, 1).
    seed: split seed.
    names: config keys of the fractions, for error messages.

  Returns:
    ``len(fractions) + 1`` sorted, disjoint index arrays that cover ``range(N)``:
    the carved parts in order, then the remainder.

  Raises:
    ValueError: a fraction is out of range or nothing would be left.
  """
  n = int(np.asarray(labels).shape[0])
  for f, name in zip(fractions, names):
    if not 0.0 <= f < 1.0:
      raise ValueError(f"{name}={f} must be in [0, 1)")
  sizes = split_sizes(n, fractions)
  if sum(sizes) >= n:
    parts = ", ".join(f"{name}={f} ({s} examples)" for f, name, s in zip(fractions, names, sizes))
    raise ValueError(f"{parts} leave nothing of the {n} examples for training; lower them")
  order = stratified_order(labels, seed)
  bounds = np.cumsum([0, *sizes, n - sum(sizes)])
  return [np.sort(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def limit(indices: np.ndarray, labels: np.ndarray, count: int, seed: int | Sequence[int]
          ) -> np.ndarray:
  """Keeps a stratified, seeded subset of ``count`` of ``indices`` (0: keep all).

  Subsets are nested: the subset of size k is contained in the subset of size
  k' > k for the same seed, so reduced-scale runs are prefixes of larger ones.

  Args:
    indices: sorted indices into ``labels``.
    labels: labels of the whole set.
    count: how many to keep; 0, or a count >= ``len(indices)``, keeps all.
    seed: subset seed.

  Returns:
    The kept indices, sorted.
  """
  if count < 0:
    raise ValueError(f"limit {count} must be >= 0 (0 keeps everything)")
  if count == 0 or count >= indices.shape[0]:
    return indices
  order = stratified_order(labels[indices], seed)
  return np.sort(indices[order[:count]])


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and standard deviation over N, H and W, in float64.

  Sums run over whole images as rows (contiguous, vectorized) in float64 chunks,
  so a uint8 CIFAR train split never needs a full float64 copy.
  """
  if images.shape[0] == 0:
    raise ValueError("cannot compute normalization statistics of an empty train split")
  channels = images.shape[-1]
  rows = images.reshape(images.shape[0], -1)
  chunk = max(1, _STATS_CHUNK // rows.shape[1])
  total = np.zeros(rows.shape[1])
  total_sq = np.zeros(rows.shape[1])
  for start in range(0, rows.shape[0], chunk):
    block = rows[start:start + chunk].astype(np.float64)
    total += block.sum(axis=0)
    total_sq += np.square(block).sum(axis=0)
  count = rows.size // channels
  mean = total.reshape(-1, channels).sum(axis=0) / count
  var = np.maximum(total_sq.reshape(-1, channels).sum(axis=0) / count - np.square(mean), 0.0)
  return mean, np.sqrt(var)


def normalize(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
  """``(images - mean) / std`` as float32, in place on one float32 copy.

  A channel with zero spread (a constant channel) is only centred.
  """
  safe_std = np.where(std > 1e-12, std, 1.0)
  out = images.astype(np.float32)
  out -= mean.astype(np.float32)
  out *= (1.0 / safe_std).astype(np.float32)
  return out
