"""Which exit a sample leaves by: the one exit rule of the project.

A sample leaves at the first early exit ``j`` whose confidence reaches its
threshold, ``conf[i, j] >= tau[j]``; the final exit always fires (its threshold is
``-inf``) and ``tau = +inf`` disables an early exit. The evaluation, the threshold
calibration (vectorized over many threshold settings) and ``EarlyExitExecutor``
(exit by exit, on the host) all decide with this rule.
"""
from __future__ import annotations

import numpy as np


def check_thresholds(thresholds, num_early: int) -> np.ndarray:
  """``[num_early]`` float64 early-exit thresholds from ``[E-1]`` or ``[E]`` (final -inf).

  Raises:
    ValueError: wrong length, a final threshold other than ``-inf``, or NaN.
  """
  tau = np.asarray(thresholds, dtype=np.float64).reshape(-1)
  if tau.shape[0] == num_early + 1 and num_early >= 0:
    if tau[-1] != -np.inf:
      raise ValueError(f"the final exit always fires, so its threshold must be -inf, got "
                       f"{tau[-1]}; pass the {num_early} early-exit thresholds only, or -inf last")
    tau = tau[:-1]
  if tau.shape[0] != num_early:
    raise ValueError(f"expected {num_early} early-exit thresholds: the network has {num_early} "
                     f"early exits, so it needs {num_early} thresholds (one per early exit, +inf "
                     f"disables one; or {num_early + 1} with a final -inf), got {tau.shape[0]}")
  if np.any(np.isnan(tau)):
    raise ValueError(f"thresholds must not be NaN (use +inf to disable an exit), got {tau}")
  return tau


def assign_exits(conf: np.ndarray, settings: np.ndarray) -> np.ndarray:
  """Exit taken ``[m, n]`` by each sample under each threshold setting.

  Args:
    conf: ``[n, E]`` confidences, final exit last.
    settings: ``[m, E-1]`` early-exit thresholds, one setting per row.

  Returns:
    int32 ``[m, n]`` exit indices in ``0..E-1``.
  """
  num_exits = conf.shape[1]
  exits = np.full((settings.shape[0], conf.shape[0]), num_exits - 1, dtype=np.int32)
  for k in range(num_exits - 2, -1, -1):
    exits = np.where(conf[None, :, k] >= settings[:, k, None], np.int32(k), exits)
  return exits


def first_exit(conf, thresholds) -> np.ndarray:
  """Index of the exit each sample takes: the first ``j`` with ``conf[i, j] >= tau[j]``.

  Args:
    conf: float ``[n, E]`` confidences, final exit last.
    thresholds: ``[E-1]`` early-exit thresholds, or ``[E]`` with a final ``-inf``;
      ``+inf`` disables an exit.

  Returns:
    int ``[n]`` exit indices in ``0..E-1``.

  Example:
    >>> first_exit(np.array([[0.9, 0.2], [0.3, 0.8]]), [0.5]).tolist()
    [0, 1]
  """
  conf = np.asarray(conf, dtype=np.float64)
  if conf.ndim != 2 or conf.shape[1] < 1:
    raise ValueError(f"conf must be a [n, E] array (samples x exits, final last), got shape "
                     f"{conf.shape}")
  tau = check_thresholds(thresholds, conf.shape[1] - 1)
  return assign_exits(conf, tau[None]).astype(np.int64)[0]
