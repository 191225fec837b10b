"""Genotypes of a search space as integer vectors, and as one-hot architectures.

The encoding the baselines search over (random search, NSGA-II), one integer per
choice of the space:

    [P exit on/off] [P*D op index per branch slot] [N bit index per backbone block]
    [P bit index per branch] [P core per branch: 0 same, 1 another; multi-core only]

``decode`` turns a vector into a ``Genotype`` (choices of a position without an
exit are ignored), ``encode`` the reverse (those choices read as 0), and
``one_hot_arch`` the genotype into the supernet's ``ArchProbs`` at that
architecture: the same probabilities ``relaxed_architecture`` gives at zero
temperature for logits that argmax to the genotype (tested).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from dnas_ee.models.supernet import ArchProbs
from dnas_ee.space.genotype import ExitGene, Genotype
from dnas_ee.space.space import SearchSpace


def _sizes(space: SearchSpace, multicore: bool) -> list[int]:
  p, d = len(space.branches), space.depth
  return [p, p * d, space.num_blocks, p, p if multicore else 0]


def encoding_bounds(space: SearchSpace, multicore: bool = False) -> np.ndarray:
  """[V] number of values of each integer of the encoding (each ranges over 0..n-1)."""
  p, pd, n, pb, pc = _sizes(space, multicore)
  return np.array([2] * p + [space.num_ops] * pd + [space.num_bits] * n
                  + [space.num_bits] * pb + [2] * pc, np.int64)


def _split(space: SearchSpace, x, multicore: bool):
  x = np.asarray(x, np.int64)
  sizes = _sizes(space, multicore)
  if x.shape != (sum(sizes),):
    raise ValueError(f"genotype encoding of length {x.shape} for a space with {sum(sizes)} choices")
  parts = np.split(x, np.cumsum(sizes)[:-1])
  gates, ops, bb, br, cores = parts
  return gates, ops.reshape(len(space.branches), space.depth), bb, br, cores


def decode(space: SearchSpace, x, multicore: bool = False) -> Genotype:
  """The genotype of an integer vector (see the module docstring)."""
  bounds = encoding_bounds(space, multicore)
  x = np.asarray(x, np.int64)
  if x.shape != bounds.shape or (x < 0).any() or (x >= bounds).any():
    raise ValueError(f"genotype encoding {x.tolist()} is outside the bounds {bounds.tolist()}")
  gates, ops, bb, br, cores = _split(space, x, multicore)
  exits = []
  for i, branch in enumerate(space.branches):
    if gates[i]:
      exits.append(ExitGene(branch.position,
                            tuple(branch.slot_ops[s][ops[i, s]] for s in range(branch.depth)),
                            branch.slot_res, space.branch_bits[i][br[i]],
                            bool(cores[i]) if multicore else False))
  return Genotype(space.backbone, tuple(exits),
                  tuple(space.backbone_bits[n][bb[n]] for n in range(space.num_blocks)),
                  space.edge_bits)


def encode(space: SearchSpace, genotype: Genotype, multicore: bool = False) -> np.ndarray:
  """The integer vector of a genotype of ``space``; positions without an exit read 0."""
  check_genotype(space, genotype)
  p = len(space.branches)
  gates, ops = np.zeros(p, np.int64), np.zeros((p, space.depth), np.int64)
  br, cores = np.zeros(p, np.int64), np.zeros(p if multicore else 0, np.int64)
  positions = [b.position for b in space.branches]
  for gene in genotype.exits:
    i = positions.index(gene.position)
    branch = space.branches[i]
    gates[i] = 1
    ops[i] = [branch.slot_ops[s].index(op) for s, op in enumerate(gene.ops)]
    br[i] = space.branch_bits[i].index(gene.bits)
    if multicore:
      cores[i] = int(gene.parallel)
  bb = [space.backbone_bits[n].index(b) for n, b in enumerate(genotype.backbone_bits)]
  return np.concatenate([gates, ops.ravel(), np.asarray(bb, np.int64), br, cores])


def check_genotype(space: SearchSpace, genotype: Genotype) -> None:
  """Raises ``ValueError`` naming the first choice of ``genotype`` that ``space`` lacks."""
  if genotype.backbone != space.backbone:
    raise ValueError("the genotype's backbone is not the space's backbone")
  if genotype.edge_bits != space.edge_bits:
    raise ValueError(f"edge bits {genotype.edge_bits} != the space's {space.edge_bits}")
  if len(genotype.backbone_bits) != space.num_blocks:
    raise ValueError(f"{len(genotype.backbone_bits)} backbone bit widths for {space.num_blocks} blocks")
  for n, b in enumerate(genotype.backbone_bits):
    if b not in space.backbone_bits[n]:
      raise ValueError(f"block {n + 1} at {b} bits; the space allows {space.backbone_bits[n]}")
  positions = [b.position for b in space.branches]
  seen = [g.position for g in genotype.exits]
  if seen != sorted(set(seen)):
    raise ValueError(f"exit positions {seen} must be increasing and distinct")
  for gene in genotype.exits:
    if gene.position not in positions:
      raise ValueError(f"exit after block {gene.position}; the space allows {positions}")
    i = positions.index(gene.position)
    branch = space.branches[i]
    if len(gene.ops) != branch.depth or gene.slot_res != branch.slot_res:
      raise ValueError(f"exit at {gene.position}: {len(gene.ops)} slots at {gene.slot_res}, the "
                       f"space has {branch.depth} at {branch.slot_res}")
    for s, op in enumerate(gene.ops):
      if op not in branch.slot_ops[s]:
        raise ValueError(f"exit at {gene.position}, slot {s}: op {op!r} not in {branch.slot_ops[s]}")
    if gene.bits not in space.branch_bits[i]:
      raise ValueError(f"exit at {gene.position}: {gene.bits} bits; the space allows "
                       f"{space.branch_bits[i]}")


def sample_encodings(space: SearchSpace, rng: np.random.Generator, count: int,
                     multicore: bool = False) -> np.ndarray:
  """[count, V] encodings drawn uniformly from the space (every integer independently)."""
  bounds = encoding_bounds(space, multicore)
  return rng.integers(0, bounds[None, :], size=(count, len(bounds)))


def one_hot_arch(space: SearchSpace, genotype: Genotype) -> ArchProbs:
  """The supernet's architecture at ``genotype``: gates 1 where it has an exit, one-hot
  op, bit and core choices.

  Positions without an exit get gate 0 and the first op and bit width (their
  branch outputs are computed but never leave a sample and cost nothing). Equal
  to ``relaxed_architecture(model, Relaxation(hard=True))`` for logits that argmax
  to the genotype (with those first choices at exit-less positions).
  """
  gates, ops, bb, br, cores = _split(space, encode(space, genotype, multicore=True), True)
  one_hot = lambda idx, k: jnp.asarray(np.eye(k, dtype=np.float32)[idx])
  return ArchProbs(gates=jnp.asarray(gates, jnp.float32),
                   ops=one_hot(ops, space.num_ops),
                   backbone_bits=one_hot(bb, space.num_bits),
                   branch_bits=one_hot(br, space.num_bits),
                   parallel=jnp.asarray(cores, jnp.float32))


def stack_archs(archs) -> ArchProbs:
  """One ``ArchProbs`` with a leading candidate axis."""
  import jax
  return jax.tree.map(lambda *xs: jnp.stack(xs), *archs)
