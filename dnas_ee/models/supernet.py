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
import numpy as np
from flax import nnx

from dnas_ee.models.blocks import BLOCK_MODULES, Head, Stem
from dnas_ee.models.branch import ExitBranch
from dnas_ee.models.layers import ArchParam
from dnas_ee.quant import SampledWidth
from dnas_ee.relax import (
    Relaxation, bounded_threshold, exit_gates, mixture_probs, sample_one_hot, threshold_logit)
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
    single_path: (static) ``ops`` are one-hot samples: each branch slot runs only its
      sampled candidate (``lax.switch``).
    sampled_bits: (static) the bit mixtures are one-hot samples: each layer quantizes
      at its sampled width only (``search.mixture_mode='sampled'``).
  """
  gates: jax.Array
  ops: jax.Array
  backbone_bits: jax.Array
  branch_bits: jax.Array
  parallel: jax.Array
  thresholds: jax.Array | None = None
  single_path: bool = False
  sampled_bits: bool = False


jax.tree_util.register_dataclass(
    ArchProbs, data_fields=["gates", "ops", "backbone_bits", "branch_bits", "parallel",
                            "thresholds"],
    meta_fields=["single_path", "sampled_bits"])


@dataclasses.dataclass(frozen=True)
class NoChoice:
  """The architecture parameter of a choice the space does not have (a space without exit
  positions: a bits-only search). Reads as a zero-size array; it is no variable, since a
  checkpoint cannot hold a zero-size array."""
  shape: tuple[int, ...]

  def __getitem__(self, index):
    return jnp.zeros(self.shape, jnp.float32)[index]

  def __setitem__(self, index, value):
    if jnp.size(value):
      raise ValueError(f"no architecture choice of shape {self.shape} to set")


def _arch_param(value: jax.Array):
  return NoChoice(tuple(value.shape)) if value.size == 0 else ArchParam(value)


class ExitThresholds(nnx.Module):
  """The exit thresholds ``tau_i`` of the search, bounded to the confidence's range
  ``(lo, hi)`` (``dnas_ee.relax.thresholds``); ``thresholds[...]`` is ``tau``.

  The learned leaf is ``raw`` (``exit_thresholds.raw`` in a checkpoint): a search
  checkpoint written when the thresholds were learned unbounded (leaf
  ``exit_thresholds``) is refused at restore, naming the path, instead of being read
  as raw values. ``search_arch.json`` keeps ``exit_thresholds`` as thresholds.
  """

  def __init__(self, num: int, init: float, lo: float, hi: float):
    self.lo, self.hi = float(lo), float(hi)
    self.raw = _arch_param(jnp.full((num,), threshold_logit(init, self.lo, self.hi), jnp.float32))

  def __getitem__(self, index):
    return bounded_threshold(self.raw[...], self.lo, self.hi)[index]


class Supernet(nnx.Module):
  """Backbone + every candidate exit branch. ``__call__`` returns a list of logits,
  one per candidate exit followed by the final classifier."""

  def __init__(self, space: SearchSpace, *, rngs: nnx.Rngs, op_logit_init_std: float = 1e-3,
               branch_grad_scale: float = 1.0, threshold_init: float = 0.5,
               threshold_range: tuple[float, float] | None = None, scan_exits: bool = False,
               branch_conv: str = "switched"):
    """``threshold_range``: the exit confidence's range ``(lo, hi)``, which the learned
    thresholds never leave (``exits.confidence.confidence_range``); None: the range every
    measure taking the value ``threshold_init`` fits in, ``(-log K, 0)`` for a negative
    one (``neg_entropy``), else ``(0, 1)`` (``max_prob``, ``margin``).

    ``branch_conv``: the exit-branch candidates' convolution (``models.layers.CONV_IMPLS``):
    'switched' (default), or 'windows' for branches trained on a frozen backbone's cached
    features, where steps outnumber compiles (``train.setup``, ``train.build``)."""
    self.space = space
    # Same-structure exit branches as one scan (``_scanned_exits``). Off by default: on
    # XLA:CPU it cut ResNet-20's jaxpr in half but XLA's time by 8% only, and the step ran
    # 1.8x slower (docs/benchmarks.md, "Compiling the ResNet-20 search step").
    self.scan_exits = bool(scan_exits)
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
        ExitBranch(b, spec.num_classes, spec.activation, spec.signed_features, rngs=rngs,
                   conv=branch_conv)
        for b in space.branches])
    p, d, k, nb = len(space.branches), space.depth, space.num_ops, space.num_bits
    self.exit_logits = _arch_param(jnp.zeros((p,), jnp.float32))
    self.op_logits = _arch_param(op_logit_init_std * jax.random.normal(rngs.params(), (p, d, k)))
    self.backbone_bit_logits = ArchParam(jnp.zeros((space.num_blocks, nb), jnp.float32))
    self.branch_bit_logits = _arch_param(jnp.zeros((p, nb), jnp.float32))
    self.alloc_logits = _arch_param(jnp.zeros((p,), jnp.float32))
    # The exit thresholds tau_i the soft exit decision uses during the search.
    lo, hi = threshold_range or ((-float(np.log(spec.num_classes)), 0.0) if threshold_init < 0
                                 else (0.0, 1.0))
    self.exit_thresholds = ExitThresholds(p, threshold_init, lo, hi)

  def __call__(self, x, arch: ArchProbs, *, train: bool):
    """Each exit's branch runs once the features it reads exist: right after its block,
    or, for a scanned group (``scan_exits``), after the group's last block."""
    # Named scopes: the program's parts by name (backbone, exits, head), so its size and
    # compile time can be split by part (experiments/benchmarks/compile_parts.py); they are
    # metadata, not part of the persistent cache's key.
    num_exits = len(self.space.branches)
    groups = exit_groups(self.space) if self.scan_exits else tuple((j,) for j in range(num_exits))
    complete_after = {group[-1]: group for group in groups}
    logits, features, start = [None] * num_exits, [None] * num_exits, 0
    for j, branch in enumerate(self.space.branches):
      with jax.named_scope("backbone"):
        x = self.forward_blocks(x, arch, start, branch.position, train=train)
      features[j], start = x, branch.position
      if j in complete_after:
        group = complete_after[j]
        with jax.named_scope("exits"):
          outs = ([self.forward_exit(x, arch, j, train=train)] if len(group) == 1
                  else self._scanned_exits(group, features, arch, train))
        for k, out in zip(group, outs):
          logits[k] = out
    with jax.named_scope("backbone"):
      x = self.forward_blocks(x, arch, start, self.space.num_blocks, train=train)
    with jax.named_scope("head"):
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

  def _scanned_exits(self, group: tuple[int, ...], features: list, arch: ArchProbs, train: bool):
    """``forward_exit`` of each exit of ``group`` (branches of one structure) as one
    ``lax.scan`` over their stacked weights and features.

    Why: the program then holds one copy of the branch per group (per backbone stage)
    instead of one per exit, and the branches are most of a supernet's program: tracing,
    XLA and a persistent-cache load all pay per copy. The numbers are those of the exits
    run one by one, to float rounding (``tests/models/test_scanned_exits.py``).
    """
    stack = lambda *leaves: jnp.stack(leaves)
    branches = [self.branches[j] for j in group]
    # One graphdef serves every member: they differ only in ``spec.position``, which the
    # branch's computation never reads.
    graphdef = nnx.graphdef(branches[0])
    scanned = (
        jax.tree.map(stack, *[nnx.state(b) for b in branches]),
        jnp.stack([scale_gradient(features[j], self.branch_grad_scale) for j in group]),
        jnp.stack([arch.ops[j] for j in group]),
        jax.tree.map(stack, *[_widths(arch, arch.branch_bits[j]) for j in group]))
    bits = self.space.branch_bits[group[0]]

    def one_exit(carry, xs):
      state, feature, ops, widths = xs
      branch = nnx.merge(graphdef, state)
      out = branch(feature, ops, bits, widths, train, single_path=arch.single_path)
      return carry, (out, nnx.state(branch, nnx.BatchStat))

    _, (logits, stats) = jax.lax.scan(one_exit, None, scanned)
    if train:   # each branch keeps its own BatchNorm statistics
      for i, branch in enumerate(branches):
        nnx.update(branch, jax.tree.map(lambda leaf: leaf[i], stats))
    return [logits[i] for i in range(len(group))]

  def forward_head(self, x, *, train: bool):
    """Logits of the final classifier from the last block's features."""
    return self.head(x, (self.space.edge_bits,), None, train)


def exit_groups(space: SearchSpace) -> tuple[tuple[int, ...], ...]:
  """The early exits as groups of branches of one structure (the same spec but the
  position, the same candidate bit widths: the exits of one backbone stage), in order."""
  groups: dict = {}
  for j, spec in enumerate(space.branches):
    key = (dataclasses.replace(spec, position=0), tuple(space.branch_bits[j]))
    groups.setdefault(key, []).append(j)
  return tuple(tuple(g) for g in groups.values())


def _widths(arch: ArchProbs, probs):
  """A layer group's bit mixture, or its sampled width."""
  return SampledWidth(probs) if arch.sampled_bits else probs


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
                         rng: jax.Array, *, ops: bool = False) -> ArchProbs:
  """The sampled parts of the supernet (``search.mixture_mode='sampled'``).

  One width per quantization group is drawn from the annealed bit distributions
  ``softmax(logits / T)``, shared by the whole batch, with GDAS's straight-through
  Gumbel gradient (``dnas_ee.relax.sample_one_hot``): every layer quantizes at one
  width. With ``ops=True`` one op per branch slot is drawn as well (a single path
  through ``lax.switch``). The exit gates are never sampled, and by default neither
  are the branch ops: a draw must not switch an exit off or judge it by a random,
  under-trained path (docs/design.md, "What the digits audit taught"); the branches
  run their op mixtures. ``probs`` supplies everything not sampled.
  """
  keys = jax.random.split(rng, 3)
  t = relax.op_temperature
  return dataclasses.replace(
      probs,
      ops=sample_one_hot(model.op_logits[...] / t, 1.0, keys[0]) if ops else probs.ops,
      backbone_bits=sample_one_hot(model.backbone_bit_logits[...] / t, 1.0, keys[1]),
      branch_bits=sample_one_hot(model.branch_bit_logits[...] / t, 1.0, keys[2]),
      single_path=ops, sampled_bits=True)
