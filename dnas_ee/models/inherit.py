"""The derived network with the supernet's weights (inherited, as one-shot NAS evaluates).

The derived network is the same module code on the genotype's space (one
candidate per choice). Its backbone, stem and head have the supernet's shapes;
each kept branch takes, slot by slot, the weights of the chosen candidate, and the
classifier of its path's final width. A derived slot can read fewer channels than
the supernet's (a supernet slot reads its widest input width state): its arrays are
the leading slices of the supernet's, channels in the same order.

One known difference at a one-hot architecture: weights are quantized per output
channel with the scale of ``max |w|`` over the input channels, and a supernet
slot after the first also holds rows for input channels that the chosen previous
op leaves at zero. Those rows change no product but can change the scale; where
they are zero (or smaller than the kept rows) the two networks agree exactly
(``tests/models/test_one_hot_equivalence.py``).
"""
from __future__ import annotations

import jax
from flax import nnx

from dnas_ee.models.supernet import Supernet
from dnas_ee.space.genotype import Genotype, genotype_space


def _leading_slice(src, dst):
  if src.shape == dst.shape:
    return src
  if src.ndim != dst.ndim or any(d > s for s, d in zip(src.shape, dst.shape)):
    raise ValueError(f"cannot inherit an array of shape {src.shape} into {dst.shape}")
  return src[tuple(slice(0, n) for n in dst.shape)]


def _copy(src_module, dst_module) -> None:
  src, dst = nnx.state(src_module), nnx.state(dst_module)
  nnx.update(dst_module, jax.tree.map(_leading_slice, src, dst))


def inherit_weights(supernet: Supernet, genotype: Genotype, *, seed: int = 0) -> Supernet:
  """A ``Supernet`` on ``genotype_space(genotype)`` holding ``supernet``'s weights.

  Args:
    supernet: a (trained) supernet of the space the genotype was derived from.
    genotype: the derived architecture (its exits must be candidate positions).
    seed: initializes the new module before its weights are overwritten.

  Raises:
    ValueError: an exit or op of the genotype is not in the supernet's space.
  """
  derived = Supernet(genotype_space(genotype), rngs=nnx.Rngs(seed),
                     branch_grad_scale=supernet.branch_grad_scale)
  _copy(supernet.stem, derived.stem)
  for src, dst in zip(supernet.blocks, derived.blocks):
    _copy(src, dst)
  _copy(supernet.head, derived.head)
  positions = [b.position for b in supernet.space.branches]
  for j, gene in enumerate(genotype.exits):
    if gene.position not in positions:
      raise ValueError(f"the genotype's exit after block {gene.position} is not a candidate "
                       f"position of the supernet ({positions})")
    i = positions.index(gene.position)
    src, dst, spec = supernet.branches[i], derived.branches[j], supernet.space.branches[i]
    for s, op in enumerate(gene.ops):
      if op not in spec.slot_ops[s]:
        raise ValueError(f"op {op!r} is not a candidate of slot {s} at exit {gene.position}")
      _copy(src.quantizers[s], dst.quantizers[s])
      _copy(src.slots[s][spec.slot_ops[s].index(op)], dst.slots[s][0])
    (width, dst_classifier), = dst.classifiers().items()
    _copy(src.classifiers()[width], dst_classifier)
  return derived
