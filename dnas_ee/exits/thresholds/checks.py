"""Input checks of the threshold search: confidences, correctness, costs, thresholds."""
from __future__ import annotations

import numpy as np

from dnas_ee.exits.decision import check_thresholds


def _check_conf(conf) -> np.ndarray:
  """Validated ``[n, E]`` float64 confidences."""
  conf = np.asarray(conf, dtype=np.float64)
  if conf.ndim != 2 or conf.shape[0] < 1 or conf.shape[1] < 1:
    raise ValueError(f"conf must be a [n, E] array with n >= 1 samples and E >= 1 exits, got shape "
                     f"{conf.shape}")
  if not np.all(np.isfinite(conf)):
    bad = np.argwhere(~np.isfinite(conf))[0]
    raise ValueError(f"conf has a non-finite value at sample {bad[0]}, exit {bad[1]}; compute the "
                     f"confidences with dnas_ee.exits.confidence (finite for any finite logits)")
  return conf


def _check_data(conf, correct, cum_cost, branch_cost=None):
  """Validated ``(conf, correct, cum_cost, branch_cost)`` as float64/bool arrays."""
  conf = _check_conf(conf)
  correct = np.asarray(correct)
  if correct.shape != conf.shape:
    raise ValueError(f"correct must have the shape of conf {conf.shape}, got {correct.shape}")
  if correct.dtype != bool:
    if not np.all((correct == 0) | (correct == 1)):
      raise ValueError("correct must be boolean (or 0/1): whether exit j's prediction is right")
    correct = correct.astype(bool)
  _, num_exits = conf.shape
  cum_cost = np.asarray(cum_cost, dtype=np.float64)
  factors = cum_cost.shape[1:]   # () or (F,): the cost is the product of F additive factors
  what = "[E], one per exit, final last (or [E, F]: F factors whose product is the cost)"
  if cum_cost.ndim not in (1, 2) or (cum_cost.ndim == 2 and factors[0] < 1):
    raise ValueError(f"cum_cost must have shape {what}, got {cum_cost.shape}")
  cum_cost = _check_costs(cum_cost, (num_exits, *factors), "cum_cost", what)
  if branch_cost is not None:
    branch_cost = _check_costs(branch_cost, (num_exits - 1, *factors), "branch_cost",
                               "[E-1], one per early exit (with cum_cost's factors)")
    if np.any(branch_cost < 0):
      raise ValueError("branch_cost must be >= 0: the cost of each early exit's branch alone")
  return conf, correct, cum_cost, branch_cost


def _check_costs(values, shape, name, what) -> np.ndarray:
  values = np.asarray(values, dtype=np.float64)
  if values.shape != shape:
    raise ValueError(f"{name} must have shape {what} = {shape}, got {values.shape}")
  if not np.all(np.isfinite(values)):
    raise ValueError(f"{name} must be finite, got {values}")
  return values


def _check_thresholds(thresholds, num_exits: int) -> np.ndarray:
  """Early-exit thresholds ``[E-1]`` from ``[E-1]`` or ``[E]`` (final must be -inf)."""
  return check_thresholds(thresholds, num_exits - 1)


def _check_candidates(candidates, num_exits: int) -> list[np.ndarray]:
  """Per early exit, its unique candidate thresholds in descending order."""
  if len(candidates) != num_exits - 1:
    raise ValueError(f"candidates must hold one list per early exit ({num_exits - 1}), got "
                     f"{len(candidates)}")
  out = []
  for k, cand in enumerate(candidates):
    cand = np.asarray(cand, dtype=np.float64).reshape(-1)
    if cand.size == 0 or np.any(np.isnan(cand)):
      raise ValueError(f"candidates for exit {k} must be a non-empty list without NaN (+inf "
                       f"disables the exit), got {cand}")
    out.append(np.unique(cand)[::-1].copy())
  return out
