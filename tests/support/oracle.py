"""The tests' cost oracle: a derived network's cost per exit, by tracing the network itself.

Written from docs/design.md's definition, not from the code it checks:

    a sample that leaves at exit j pays every backbone block up to exit j's position
    and every exit branch evaluated on the way (exits 1..j, each computed and, before j,
    rejected); the final exit pays every block and every branch.

Each unit of the derived network (the stem, every backbone block, every exit branch,
the final classifier) is *run* through ``jax.make_jaxpr`` (``dnas_ee.space.trace``):
its layers come from the convolutions, dense layers and poolings the module actually
executes, not from the search space's signature lists or the dense cost tables, and
each layer is priced with the cost source. The stem and the final classifier run at
``edge_bits``; the rest at its group's width. A trace cannot tell a residual add from
other additions, so each block's residual add is added from the blocks' definitions
(He et al. 2016: every basic block adds its shortcut; Sandler et al. 2018: an inverted
residual adds its input when stride 1 keeps the width).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dnas_ee.models.supernet import Supernet, relaxed_architecture
from dnas_ee.relax import Relaxation
from dnas_ee.space.genotype import Genotype, genotype_space
from dnas_ee.space.signature import OpSignature
from dnas_ee.space.trace import trace_ops


def _residual_add(block, bits: int) -> list[OpSignature]:
  if block.kind == "resnet_basic" or (block.kind == "mbv2_ir" and block.stride == 1
                                      and block.cin == block.cout):
    r = block.out_res
    return [OpSignature("add", r, r, block.cout, block.cout, 1, 1, 1, bits, bits)]
  return []


def _derived_model(genotype: Genotype):
  space = genotype_space(genotype)
  model = Supernet(space, rngs=nnx.Rngs(0))
  return space, model, relaxed_architecture(model, Relaxation(hard=True))


def traced_units(genotype: Genotype):
  """(``[N]`` layer lists of the backbone blocks, ``[P]`` layer lists of the branches),
  the stem counted in block 1 and the final classifier in block N, as the network runs."""
  space, model, arch = _derived_model(genotype)
  edge = genotype.edge_bits
  h = jax.ShapeDtypeStruct((1,) + tuple(genotype.backbone.image_shape), jnp.float32)

  def stem(x):
    return model.stem(x, (edge,), None, False)

  blocks = [list(trace_ops(stem, h, bits=edge))]
  h = jax.eval_shape(stem, h)
  branch_at = {b.position: j for j, b in enumerate(space.branches)}
  branches = [None] * len(space.branches)
  for i in range(space.num_blocks):
    def block(x, i=i):
      return model.blocks[i](x, space.backbone_bits[i], arch.backbone_bits[i], False)
    if i:
      blocks.append([])
    blocks[i] += trace_ops(block, h, bits=genotype.backbone_bits[i])
    blocks[i] += _residual_add(genotype.backbone.blocks[i], genotype.backbone_bits[i])
    h = jax.eval_shape(block, h)
    if i + 1 in branch_at:
      j = branch_at[i + 1]
      branches[j] = list(trace_ops(lambda x, j=j: model.forward_exit(x, arch, j, train=False), h,
                                   bits=genotype.exits[j].bits))
  blocks[-1] += trace_ops(lambda x: model.forward_head(x, train=False), h, bits=edge)
  return blocks, branches


def unit_prices(genotype: Genotype, source):
  """(``[N, M]`` blocks, ``[P, M]`` branches): the traced layers priced by ``source``."""
  blocks, branches = traced_units(genotype)
  m = len(source.metrics)
  price = lambda layers: np.sum([np.asarray(source(s), np.float64) for s in layers] or
                                [np.zeros(m)], axis=0)
  return (np.stack([price(b) for b in blocks]),
          np.stack([price(b) for b in branches]) if branches else np.zeros((0, m)))


def exit_costs(genotype: Genotype, source) -> np.ndarray:
  """``[E, M]``: the cost of a sample that leaves at each exit (early exits, then the final)."""
  blocks, branches = unit_prices(genotype, source)
  out = []
  for j, gene in enumerate(genotype.exits):
    out.append(blocks[:gene.position].sum(0) + branches[:j + 1].sum(0))
  out.append(blocks.sum(0) + branches.sum(0))
  return np.stack(out)


def macs_per_exit(genotype: Genotype) -> np.ndarray:
  """``[E]`` MACs of leaving at each exit, from the layers' shapes alone
  (``H_out W_out K^2 C_in C_out / groups`` per convolution, ``C_in C_out`` per dense)."""
  blocks, branches = traced_units(genotype)

  def macs(layers):
    total = 0
    for s in layers:
      if s.op == "conv":
        out = -(-s.h // s.stride)
        total += out * out * s.kernel * s.kernel * (s.cin // s.groups) * s.cout
      elif s.op == "dense":
        total += s.cin * s.cout
    return total

  b = [macs(x) for x in blocks]
  a = [macs(x) for x in branches]
  out = [sum(b[:g.position]) + sum(a[:j + 1]) for j, g in enumerate(genotype.exits)]
  return np.asarray(out + [sum(b) + sum(a)], np.float64)
