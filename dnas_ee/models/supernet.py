"""The supernet: backbone, candidate exit branches, and the architecture logits.

Weights are ``nnx.Param``, BatchNorm statistics ``nnx.BatchStat``, architecture
logits ``ArchParam`` (their own variable type, so filters route them to their
own optimizer). The forward pass takes the *relaxed* architecture (``ArchProbs``)
as an argument, computed from the logits by ``relaxed_architecture``; the same
probabilities feed the cost layer.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from dnas_ee.models.blocks import BLOCK_MODULES, Head, Stem
from dnas_ee.models.branch import ExitBranch
from dnas_ee.models.layers import ArchParam
from dnas_ee.quant import SampledWidth
from dnas_ee.relax import (
    Relaxation, exit_gates, mixture_probs, sample_bernoulli, sample_one_hot)
from dnas_ee.space.space import SearchSpace


@dataclasses.dataclass(frozen=True)
class ArchProbs:
  """The relaxed architecture of one forward pass.

  Attributes:
    gates: [P] ``g_i``, probability that an exit is placed at each candidate position.
    ops: [P, D, K] op mixture of each branch slot.
    backbone_bits: [N, num_bits] bit-width mixture of each backbone block.
    branch_bits: [P, num_bits] bit-width mixture of each branch.
    parallel: [P] probability that each branch runs on another core of a multi-core
      accelerator (resource allocation; unused on one core).
    thresholds: [P] exit thresholds ``tau_i`` of the soft exit decision (learned by
      the search, ``exits.learn_thresholds``), or None where the caller supplies them.
    single_path: (static) ``ops`` and the bit mixtures are one-hot samples: each
      branch slot runs only its sampled candidate (``lax.switch``) and each layer
      quantizes at its sampled width only, ``search.mixture_mode='sampled'``.
  """
  gates: jax.Array
  ops: jax.Array
  backbone_bits: jax.Array
  branch_bits: jax.Array
  parallel: jax.Array
  thresholds: jax.Array | None = None
  single_path: bool = False


jax.tree_util.register_dataclass(
    ArchProbs, data_fields=["gates", "ops", "backbone_bits", "branch_bits", "parallel",
                            "thresholds"],
    meta_fields=["single_path"])


class Supernet(nnx.Module):
  """Backbone + every candidate exit branch. ``__call__`` returns a list of logits,
  one per candidate exit followed by the final classifier."""

  def __init__(self, space: SearchSpace, *, rngs: nnx.Rngs, op_logit_init_std: float = 1e-3,
               branch_grad_scale: float = 1.0, threshold_init: float = 0.5):
    self.space = space
    # Scales the gradient each exit branch sends into the backbone (gradient
    # equilibrium, Li et al. 2019): <1 keeps shallow exits from bending early features.
    self.branch_grad_scale = float(branch_grad_scale)
    spec = space.backbone
    self.stem = Stem(spec, rngs=rngs)
    self.blocks = nnx.List([
        BLOCK_MODULES[b.kind](b, spec.activation, spec.signed_features, rngs=rngs)
        for b in spec.blocks])
    self.head = Head(spec, rngs=rngs)
    self.branches = nnx.List([
        ExitBranch(b, spec.num_classes, spec.activation, spec.signed_features, rngs=rngs)
        for b in space.branches])
    p, d, k, nb = len(space.branches), space.depth, space.num_ops, space.num_bits
    self.exit_logits = ArchParam(jnp.zeros((p,), jnp.float32))
    self.op_logits = ArchParam(op_logit_init_std * jax.random.normal(rngs.params(), (p, d, k)))
    self.backbone_bit_logits = ArchParam(jnp.zeros((space.num_blocks, nb), jnp.float32))
    self.branch_bit_logits = ArchParam(jnp.zeros((p, nb), jnp.float32))
    self.alloc_logits = ArchParam(jnp.zeros((p,), jnp.float32))
    # The exit thresholds tau_i the soft exit decision uses during the search.
    self.exit_thresholds = ArchParam(jnp.full((p,), threshold_init, jnp.float32))

  def __call__(self, x, arch: ArchProbs, *, train: bool):
    logits, start = [], 0
    for j, branch in enumerate(self.space.branches):
      x = self.forward_blocks(x, arch, start, branch.position, train=train)
      logits.append(self.forward_exit(x, arch, j, train=train))
      start = branch.position
    x = self.forward_blocks(x, arch, start, self.space.num_blocks, train=train)
    logits.append(self.forward_head(x, train=train))
    return logits

  # The segments ``__call__`` composes; ``EarlyExitExecutor`` composes the same ones
  # to run a derived network exit by exit.

  def forward_blocks(self, x, arch: ArchProbs, start: int, stop: int, *, train: bool):
    """Features after backbone blocks ``start:stop`` (0-based); ``start == 0`` runs the
    stem first, so ``x`` is the image batch there and a feature map otherwise."""
    space = self.space
    if start == 0:
      x = self.stem(x, (space.edge_bits,), None, train)
    for i in range(start, stop):
      x = self.blocks[i](x, space.backbone_bits[i], _widths(arch, arch.backbone_bits[i]), train)
    return x

  def forward_exit(self, x, arch: ArchProbs, j: int, *, train: bool):
    """Logits of early exit ``j`` from the features after its block."""
    space = self.space
    feature = scale_gradient(x, self.branch_grad_scale)
    return self.branches[j](feature, arch.ops[j], space.branch_bits[j],
                            _widths(arch, arch.branch_bits[j]), train, single_path=arch.single_path)

  def forward_head(self, x, *, train: bool):
    """Logits of the final classifier from the last block's features."""
    return self.head(x, (self.space.edge_bits,), None, train)


def _widths(arch: ArchProbs, probs):
  """A layer group's bit mixture, or its sampled width on a single path."""
  return SampledWidth(probs) if arch.single_path else probs


def scale_gradient(x, scale: float):
  """Identity forward; multiplies the backward gradient by ``scale``."""
  if scale == 1.0:
    return x
  return x + (scale - 1.0) * (x - jax.lax.stop_gradient(x))   # exactly x forward


def relaxed_architecture(model: Supernet, relax: Relaxation,
                         rng: jax.Array | None = None) -> ArchProbs:
  """Turns the model's architecture logits into mixture probabilities and gates.

  In ``mixture_mode='sampled'`` these are the probabilities the expected cost is
  taken over; ``sampled_architecture`` draws the single path the forward pass runs.
  """
  keys = jax.random.split(rng, 4) if rng is not None else [None] * 4
  alloc = model.alloc_logits[...]
  if model.space.fixed_exits:
    gates = jnp.ones_like(model.exit_logits[...])
    parallel = jnp.asarray(model.space.parallel_flags, jnp.float32).reshape(alloc.shape)
  else:
    gates = exit_gates(model.exit_logits[...], relax, keys[0])
    parallel = (alloc > 0).astype(alloc.dtype) if relax.hard else jax.nn.sigmoid(alloc)
  return ArchProbs(
      gates=gates,
      ops=mixture_probs(model.op_logits[...], relax, keys[1]),
      backbone_bits=mixture_probs(model.backbone_bit_logits[...], relax, keys[2]),
      branch_bits=mixture_probs(model.branch_bit_logits[...], relax, keys[3]),
      parallel=parallel, thresholds=model.exit_thresholds[...])


def sampled_architecture(model: Supernet, probs: ArchProbs, relax: Relaxation,
                         rng: jax.Array) -> ArchProbs:
  """One path of the supernet, drawn from the logits (single-path search).

  One op per branch slot, one width per quantization group and one on/off state
  per exit gate, shared by the whole batch, with GDAS's straight-through Gumbel
  gradients (``dnas_ee.relax.sample_one_hot``). ``probs`` supplies what is not
  sampled (core allocation, thresholds).
  """
  # Samples come from the annealed distributions softmax(logits / T), sigmoid(beta / T):
  # the very probabilities the expected cost is taken over.
  keys = jax.random.split(rng, 4)
  t = relax.op_temperature
  gates = (probs.gates if model.space.fixed_exits
           else sample_bernoulli(model.exit_logits[...] / t, 1.0, keys[0]))
  return dataclasses.replace(
      probs, gates=gates,
      ops=sample_one_hot(model.op_logits[...] / t, 1.0, keys[1]),
      backbone_bits=sample_one_hot(model.backbone_bit_logits[...] / t, 1.0, keys[2]),
      branch_bits=sample_one_hot(model.branch_bit_logits[...] / t, 1.0, keys[3]),
      single_path=True)
