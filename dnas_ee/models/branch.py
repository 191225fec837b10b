"""Exit branches: a chain of slots, each a DARTS mixed op over candidate ops.

Slot ``s`` quantizes its input once (shared by its candidates), runs every
candidate, resizes each output to the next slot's resolution and zero-pads its
channels to the branch's widest width, and mixes them with the slot's op
probabilities. Zero channels stay zero through every later op (convs ignore
them, pools/identity/depthwise carry no BatchNorm or bias), so at a one-hot
mixture the slot computes exactly its chosen op. After the last slot each
candidate's output is globally pooled before mixing; a dense classifier follows.
"""
from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
from flax import nnx

from dnas_ee.models.layers import ACTIVATIONS, ActQuant, QConv, QDense, batch_norm, pool, resize
from dnas_ee.space.ops import OpSpec, parse_op
from dnas_ee.space.space import BranchSpec


class CandidateOp(nnx.Module):
  """One candidate op of a slot (conv/dwsep carry weights; pools and identity none)."""

  def __init__(self, op: OpSpec, cin: int, base_width: int, act: str, *, rngs: nnx.Rngs):
    self.op = op
    self.act = ACTIVATIONS[act]
    cout = op.out_width(cin, base_width)
    if op.kind == "conv":   # switched: a sampled search runs the candidate inside lax.switch
      self.conv = QConv(cin, cout, op.kernel, stride=op.stride, switched=True, rngs=rngs)
      self.bn = batch_norm(cout, rngs)
    elif op.kind == "dwsep":
      self.depthwise = QConv(cin, cin, op.kernel, stride=op.stride, groups=cin, switched=True,
                             rngs=rngs)
      self.pointwise = QConv(cin, cout, 1, signed_input=True, switched=True, rngs=rngs)
      self.bn = batch_norm(cout, rngs)

  def __call__(self, x, x_quantized, bits, probs, train: bool):
    kind = self.op.kind
    if kind == "identity":
      return x
    if kind in ("maxpool", "avgpool"):
      return pool(x, kind, self.op.kernel, self.op.stride)
    if kind == "conv":
      y = self.conv(x_quantized, bits, probs)
    else:
      y = self.pointwise(self.depthwise(x_quantized, bits, probs), bits, probs)
    return self.act(self.bn(y, use_running_average=not train))


def _pad_channels(x, width: int):
  extra = width - x.shape[-1]
  return x if extra == 0 else jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, extra)])


class ExitBranch(nnx.Module):
  """The branch of one candidate exit position; returns logits [B, num_classes]."""

  def __init__(self, spec: BranchSpec, num_classes: int, act: str, signed_features: bool, *,
               rngs: nnx.Rngs):
    self.spec = spec
    width = spec.max_width()
    self.quantizers = nnx.List()
    self.slots = nnx.List()
    for slot, names in enumerate(spec.slot_ops):
      cin = spec.base_width if slot == 0 else width
      self.quantizers.append(ActQuant(signed=signed_features))
      self.slots.append(nnx.List([CandidateOp(parse_op(n), cin, spec.base_width, act, rngs=rngs)
                                  for n in names]))
    self.classifier = QDense(width, num_classes, signed_input=signed_features, rngs=rngs)

  def __call__(self, x, op_probs, bits: Sequence[int], bit_probs, train: bool, *,
               single_path: bool = False):
    """``op_probs`` [depth, K]; ``bit_probs`` [num_bits].

    ``single_path``: ``op_probs`` rows are one-hot samples; only the sampled
    candidate of each slot runs (``lax.switch``) and its output is multiplied by
    its (straight-through) one-hot weight, so the gradient still reaches the logits.
    """
    spec, width = self.spec, self.spec.max_width()
    x = resize(x, spec.slot_res[0])
    for slot, candidates in enumerate(self.slots):
      x_quantized = self.quantizers[slot](x, bits, bit_probs)
      last = slot + 1 == spec.depth

      def run(op, x=x, x_quantized=x_quantized, last=last, slot=slot):
        y = op(x, x_quantized, bits, bit_probs, train)
        y = jnp.mean(y, axis=(1, 2)) if last else resize(y, spec.slot_res[slot + 1])
        return _pad_channels(y, width)

      if len(candidates) == 1:
        x = run(candidates[0])
      elif single_path:
        index = jnp.argmax(op_probs[slot])
        x = op_probs[slot, index] * _switch(index, candidates, run)
      else:
        x = sum(op_probs[slot, k] * run(op) for k, op in enumerate(candidates))
    return self.classifier(x, bits, bit_probs)


def _switch(index, candidates, run):
  """``run(candidates[index])`` with only that candidate executed (``nnx.switch``
  carries the candidates' weights and BatchNorm updates through ``lax.switch``)."""
  branches = [lambda cands, k=k: run(cands[k]) for k in range(len(candidates))]
  return nnx.switch(index, branches, candidates)
