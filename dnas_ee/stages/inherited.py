"""The derived architecture evaluated inside the trained supernet (inherited weights).

A one-shot estimate of a search's result without retraining: the supernet at
zero temperature (one-hot ops and bit widths, hard gates ``beta > 0`` and hard
thresholds ``c >= tau`` at the thresholds the search learned) is exactly the
derived network with the supernet's weights (``tests/core/test_one_hot_equivalence``).
Its accuracy and the modelled cost of the exits its samples take are what a
lambda sweep traces, one search per point. The static reference is the same
supernet with no exit and every block at the widest width (the cost reference
``C_ref`` of the penalty).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dnas_ee.cost import exit_probabilities
from dnas_ee.cost.metrics import OBJECTIVE_METRICS
from dnas_ee.exits.confidence import confidence
from dnas_ee.models.supernet import ArchProbs, relaxed_architecture
from dnas_ee.relax import Relaxation, soft_exit_decision
from dnas_ee.train.loop import is_primary
from dnas_ee.train.objective import exit_costs
from dnas_ee.train.setup import load_search_state

HARD = Relaxation(hard=True)


def static_architecture(arch: ArchProbs) -> ArchProbs:
  """No exit, every block and branch at the widest candidate width."""
  widest = jnp.zeros_like(arch.backbone_bits).at[:, -1].set(1.0)
  return dataclasses.replace(arch, gates=jnp.zeros_like(arch.gates), backbone_bits=widest)


def evaluate_architecture(model, arch: ArchProbs, spec, ctx, images, labels, *,
                          batch_size: int = 256) -> dict:
  """Accuracy, exit rates and modelled costs of ``model`` at a hard ``arch``.

  Args:
    model: the supernet (inference mode: BatchNorm running statistics).
    arch: a zero-temperature architecture (``relaxed_architecture(model, HARD)``).
    spec, ctx: the search objective (``train.build.build_objective``).
    images, labels: the evaluated split.

  Returns:
    ``accuracy``, ``exit_rates`` [E], ``costs`` (mean per-sample cost per metric),
    and ``edp`` when latency and energy are priced.
  """
  thresholds = ctx.thresholds if arch.thresholds is None else arch.thresholds
  paths = np.asarray(exit_costs(spec, ctx, arch), np.float64)          # [E, M]

  @jax.jit
  def exits_taken(x, y):
    logits = model(x, arch, train=False)
    conf = jnp.stack([confidence(l, spec.confidence) for l in logits[:-1]], axis=1)
    _, leave = exit_probabilities(arch.gates, soft_exit_decision(conf, thresholds[None], HARD))
    correct = jnp.stack([jnp.argmax(l, -1) == y for l in logits], axis=1)
    return jnp.argmax(leave, axis=1), jnp.sum(leave * correct, axis=1)

  taken, right = [], []
  for i in range(0, len(images), batch_size):
    x, y = images[i:i + batch_size], labels[i:i + batch_size]
    rows = len(x)
    if rows < batch_size:   # one compiled shape
      pad = batch_size - rows
      x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
      y = np.concatenate([y, np.zeros((pad,), y.dtype)])
    t, r = exits_taken(jnp.asarray(x), jnp.asarray(y))
    taken.append(np.asarray(t)[:rows])
    right.append(np.asarray(r)[:rows])
  taken, right = np.concatenate(taken), np.concatenate(right)
  per_sample = paths[taken]                                            # [N, M]
  out = dict(accuracy=float(right.mean()),
             exit_rates=np.bincount(taken, minlength=paths.shape[0]).astype(float).tolist(),
             costs={m: float(per_sample[:, k].mean()) for k, m in enumerate(spec.metrics)})
  out["exit_rates"] = [r / len(taken) for r in out["exit_rates"]]
  if "latency_s" in spec.metrics and "energy_j" in spec.metrics:
    lat, en = spec.metrics.index("latency_s"), spec.metrics.index("energy_j")
    out["edp"] = float(np.mean(per_sample[:, lat] * per_sample[:, en]))
  return out


def searched_metric(result: dict, objective: str, weights: dict) -> float:
  """The value of the searched metric (``hw.objective``) in an ``evaluate_architecture`` result."""
  if objective == "edp":
    return result["edp"]
  if objective == "weighted":
    return sum(w * result["costs"][m] for m, w in weights.items() if m in result["costs"])
  return result["costs"][OBJECTIVE_METRICS[objective]]


def inherited_evaluation(model, spec, ctx, images, labels) -> dict:
  """The derived architecture and the static reference, both with the supernet's weights."""
  derived = relaxed_architecture(model, HARD)
  return dict(derived=evaluate_architecture(model, derived, spec, ctx, images, labels),
              static=evaluate_architecture(model, static_architecture(derived), spec, ctx,
                                           images, labels))


def evaluate_inherited(config, workdir, *, split: str = "test") -> dict:
  """The derived architecture inside the trained supernet, and the static reference;
  writes ``inherited.json``. A one-shot estimate: one search per point of a lambda
  sweep, no retraining."""
  workdir = Path(workdir)
  run, state = load_search_state(config, workdir)
  model = nnx.merge(run.setup.graphdef, state.params, state.arch, state.stats)
  part = getattr(run.data, split)
  result = inherited_evaluation(model, run.setup.objective, run.ctx, part.images, part.labels)
  objective, weights = config.hw.objective, config.loss.metric_weights.to_dict()
  for which in ("derived", "static"):
    result[which]["searched_metric"] = searched_metric(result[which], objective, weights)
  result.update(objective=objective, split=split, lam=config.loss.lam.to_dict(),
                searched_ratio=result["derived"]["searched_metric"]
                / result["static"]["searched_metric"],
                genotype=json.loads((workdir / "genotype.json").read_text())
                if (workdir / "genotype.json").exists() else None)
  if is_primary():
    (workdir / "inherited.json").write_text(json.dumps(result, indent=1))
  return result
