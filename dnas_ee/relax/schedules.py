"""Schedules ``step -> value`` built from config data, evaluated inside jit."""
from __future__ import annotations

import jax.numpy as jnp
import optax

SCHEDULE_KINDS = ("constant", "linear", "exponential", "cosine")


def make_schedule(kind: str, start: float, end: float, steps: int, delay: int = 0):
  """A jit-friendly schedule: ``start`` for ``delay`` steps, then ``kind`` to ``end``.

  Example:
    >>> make_schedule("linear", 1.0, 0.0, 10)(5)
    Array(0.5, dtype=float32, weak_type=True)
  """
  steps = max(int(steps), 1)
  if kind == "constant":
    inner = optax.constant_schedule(start)
  elif kind == "linear":
    inner = optax.linear_schedule(start, end, steps)
  elif kind == "exponential":
    if start <= 0 or end <= 0:
      raise ValueError(f"exponential schedule needs positive start/end, got {start}, {end}")
    inner = optax.exponential_decay(start, steps, end / start, end_value=end)
  elif kind == "cosine":
    inner = lambda step: end + 0.5 * (start - end) * (1 + jnp.cos(jnp.pi * jnp.minimum(step, steps) / steps))
  else:
    raise ValueError(f"unknown schedule kind {kind!r}; use one of {SCHEDULE_KINDS}")
  return lambda step: jnp.where(step < delay, start, inner(jnp.maximum(step - delay, 0)))
