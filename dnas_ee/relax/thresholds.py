"""Exit thresholds bounded to the confidence's range.

A learned threshold above every confidence the exit can give (``tau > 1`` for
``max_prob``) makes the soft exit decision ``sigmoid((c - tau) / t)`` ~0 for every
sample: its gradient vanishes and the gate sees only the branch's cost, so it closes
for good (docs/design.md, "What the digits audit taught"). The search therefore
learns an unbounded ``raw`` and uses

    tau = lo + (hi - lo) * sigmoid(4 (raw - mid) / (hi - lo)),   mid = (lo + hi) / 2

with ``(lo, hi)`` the confidence's range (``exits.confidence.confidence_range``:
``(1/K, 1)`` for ``max_prob``, ``(0, 1)`` for ``margin``, ``(-log K, 0)`` for
``neg_entropy``). ``raw`` is in threshold units: ``tau = raw`` at ``mid`` with slope
1, so an optimizer's step moves the threshold as far as an unbounded one in the
middle of the range and less and less towards its ends, which it never reaches.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# An initial threshold is moved this fraction of the range inside it (the map's ends are
# asymptotes).
INIT_MARGIN = 1e-3


def bounded_threshold(raw: jax.Array, lo: float, hi: float) -> jax.Array:
  """``tau`` in ``(lo, hi)`` from the unbounded ``raw`` (module docstring)."""
  width = hi - lo
  return lo + width * jax.nn.sigmoid(4.0 * (raw - 0.5 * (lo + hi)) / width)


def threshold_logit(tau, lo: float, hi: float) -> np.ndarray:
  """The ``raw`` whose ``bounded_threshold`` is ``tau`` (clipped ``INIT_MARGIN`` of the
  range inside it).

  Example:
    >>> float(bounded_threshold(jnp.asarray(threshold_logit(0.9, 0.1, 1.0)), 0.1, 1.0))  # doctest: +ELLIPSIS
    0.9...
  """
  width = hi - lo
  u = np.clip((np.asarray(tau, np.float64) - lo) / width, INIT_MARGIN, 1 - INIT_MARGIN)
  return 0.5 * (lo + hi) + 0.25 * width * np.log(u / (1 - u))
