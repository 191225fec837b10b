"""Scoring genotypes with a trained supernet's weights (weight sharing, as one-shot NAS).

A candidate's score is the supernet's accuracy on the architecture-validation
split at the one-hot architecture of the genotype (``one_hot_arch``), exits
taken at the search thresholds (``exits.search_threshold``), and its cost from
the cost layer at zero temperature (the expected cost of the discrete network,
per sample, averaged over the same images). Candidates are scored in batches of
a fixed size under one jit (``lax.map`` over candidates: one compile).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dnas_ee.cost import exit_probabilities
from dnas_ee.methods.encoding import stack_archs
from dnas_ee.exits.confidence import confidence
from dnas_ee.models.supernet import ArchProbs
from dnas_ee.relax import Relaxation, soft_exit_decision
from dnas_ee.train.frozen import frozen_forward
from dnas_ee.train.objective import CostContext, ObjectiveSpec, search_cost

HARD = Relaxation(hard=True)


def score_arch(graphdef, params, arch_logits, stats, arch: ArchProbs, images, labels,
               spec: ObjectiveSpec, ctx: CostContext, *, train: bool = False):
  """Accuracy and costs of the supernet at one (one-hot) architecture.

  Args:
    graphdef, params, arch_logits, stats: the supernet, split as in the search
      (its architecture logits are not used: ``arch`` replaces them).
    arch: the architecture of the forward pass (``one_hot_arch``).
    images, labels: the scored split (images, or a frozen backbone's cached
      ``(features, final logits)``: ``dnas_ee.train.feature_cache``).
    spec, ctx: the search objective (``build.build_objective``).
    train: BatchNorm on the images' own statistics (recalibrated per candidate)
      instead of the supernet's running statistics.

  Returns:
    (accuracy, expected costs [M], cost): the cost is the configured objective
    relative to the static reference (``search_cost`` in its linear form: the
    weighted ``E[C]/C_ref``, or ``EDP/EDP_ref``).
  """
  model = nnx.merge(graphdef, params, arch_logits, stats, copy=True)
  if isinstance(images, tuple):   # a frozen backbone's cached (features, final logits)
    logits = frozen_forward(model, images, arch, train=train)
  else:
    logits = model(images, arch, train=train)
  stacked = jnp.stack(logits, axis=1)                                 # [B, E, K]
  conf = jnp.stack([confidence(l, spec.confidence) for l in logits[:-1]], axis=1)
  soft = soft_exit_decision(conf, ctx.thresholds[None, :], HARD)
  _, leave = exit_probabilities(arch.gates, soft)
  correct = (jnp.argmax(stacked, -1) == labels[:, None]).astype(jnp.float32)
  accuracy = jnp.mean(jnp.sum(leave * correct, axis=1))
  cost, costs, _ = search_cost(dataclasses.replace(spec, penalty="linear"), ctx, arch, soft)
  return accuracy, costs, cost


@functools.partial(jax.jit, static_argnames=("graphdef", "spec", "train"))
def score_archs(graphdef, params, arch_logits, stats, archs: ArchProbs, images, labels,
                spec: ObjectiveSpec, ctx: CostContext, train: bool = False):
  """``score_arch`` over a stack of architectures (leading axis), sequentially on device.

  Returns:
    (accuracy [A], costs [A, M], cost [A]).
  """
  one = lambda arch: score_arch(graphdef, params, arch_logits, stats, arch, images, labels, spec,
                                ctx, train=train)
  return jax.lax.map(one, archs)


class GenotypeScorer:
  """Scores encodings in fixed-size batches (one compile) and remembers every result.

  Args:
    run: arrays of the trained supernet: (graphdef, params, arch_logits, stats).
    to_arch: encoding -> ``ArchProbs``.
    images, labels, spec, ctx, train: as ``score_arch``.
    batch: candidates per compiled call (the last batch is padded by repetition).
  """

  def __init__(self, run, to_arch, images, labels, spec, ctx, *, train=False, batch=16):
    self.run, self.to_arch, self.batch = run, to_arch, int(batch)
    self.images, self.labels = jax.tree.map(jnp.asarray, images), jnp.asarray(labels)
    self.spec, self.ctx, self.train = spec, ctx, train
    self.cache: dict[tuple, tuple[float, float, list]] = {}
    self.calls = 0   # candidate evaluations asked for (repeats included)

  def __call__(self, encodings: np.ndarray):
    """(accuracy [n], cost [n]) of ``encodings`` [n, V]."""
    encodings = np.asarray(encodings, np.int64)
    self.calls += len(encodings)
    todo = list(dict.fromkeys(tuple(x) for x in encodings if tuple(x) not in self.cache))
    for i in range(0, len(todo), self.batch):
      chunk = todo[i:i + self.batch]
      padded = chunk + [chunk[-1]] * (self.batch - len(chunk))
      archs = stack_archs([self.to_arch(np.asarray(x)) for x in padded])
      acc, costs, cost = score_archs(*self.run, archs, self.images, self.labels, spec=self.spec,
                                     ctx=self.ctx, train=self.train)
      acc, costs, cost = np.asarray(acc), np.asarray(costs), np.asarray(cost)
      for j, x in enumerate(chunk):
        self.cache[x] = (float(acc[j]), float(cost[j]), costs[j].tolist())
    scores = [self.cache[tuple(x)] for x in encodings]
    return np.array([s[0] for s in scores]), np.array([s[1] for s in scores])
