"""Cost penalties: ``lambda * penalty(E[C] / C_ref)``, combinable over metrics."""
from __future__ import annotations

import jax
import jax.numpy as jnp

PENALTY_FORMS = ("linear", "budget", "log")


def cost_penalty(expected: jax.Array, reference: jax.Array, weights: jax.Array, *, form: str,
                 target: float = 1.0) -> jax.Array:
  """Penalty on the expected cost relative to a reference, summed over metrics.

  Args:
    expected: [M] ``E[C]``.
    reference: [M] ``C_ref`` (the static backbone at the reference bit width).
    weights: [M] weight of each metric (0 ignores it).
    form: 'linear' ``E/C_ref`` (ProxylessNAS additive), 'budget'
      ``max(0, E/C_target - 1)`` with ``C_target = target * C_ref`` (penalizes only the
      excess), or 'log' ``log(E/C_ref)`` (FBNet/ProxylessNAS multiplicative form, as a
      term added to a log-loss).
    target: budget as a fraction of the reference ('budget' only).
  """
  ratio = expected / reference
  if form == "linear":
    per_metric = ratio
  elif form == "budget":
    per_metric = jax.nn.relu(ratio / target - 1.0)
  elif form == "log":
    per_metric = jnp.log(ratio)
  else:
    raise ValueError(f"unknown penalty form {form!r}; use one of {PENALTY_FORMS}")
  return jnp.sum(weights * per_metric)
