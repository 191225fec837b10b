"""Exit branches: a chain of slots, each a DARTS mixed op over candidate ops.

Candidate ops of different widths are mixed **per width state**, not by zero-padding
to the widest: the branch carries one tensor per channel width its ops can produce
(``space.BranchSpec.width_mults``), each the probability-weighted mean of the paths
that reach that width, with the paths' total probability (its mass). Slot ``s`` runs
every candidate on every input state (a conv reads a state through the first input
channels of its weights, a pool or identity keeps the state's width), resizes each
output to the next slot's resolution and adds it to the state of its output width,
weighted by ``p_k x mass``. After the last slot each state is globally pooled and read
by **its own classifier**: ``logits = sum_w mass_w classifier_w(feature_w)``.

Why: with one zero-padded tensor, the classifier's weights on the channels only wide
ops fill are trained on wide features alone, which favours wide ops in the mixture
(a narrow op shares every weight it uses with the mixture, a wide one has weights of
its own). Per width state every op is judged with a classifier of its own width, and
the mixture is exactly the mixture over paths that the cost tables price (a Markov
chain over the same width states, ``cost.expected``). At a one-hot mixture the branch
computes exactly its chosen path; a derived branch (one candidate per slot) has one
state per slot and its layers have the path's real widths.

Single-path mode (``lax.switch``, one op per slot) runs the one sampled path on one
tensor zero-padded to the slot's widest input (one path: nothing is mixed) and reads
it with the classifier of the path's width.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from dnas_ee.models.layers import ACTIVATIONS, ActQuant, QConv, QDense, batch_norm, pool, resize
from dnas_ee.space.ops import OpSpec, parse_op
from dnas_ee.space.space import BranchSpec

_MASS_FLOOR = 1e-12   # a state's mean is its weighted sum / max(mass, floor)


def width_states(spec: BranchSpec) -> tuple[tuple[int, ...], ...]:
  """The channel widths a branch's tensor can have: ``[D + 1]`` sorted tuples, at the
  input of each slot and after the last one."""
  states = [(spec.base_width,)]
  for names in spec.slot_ops:
    states.append(tuple(sorted({parse_op(n).out_width(c, spec.base_width)
                                for n in names for c in states[-1]})))
  return tuple(states)


class CandidateOp(nnx.Module):
  """One candidate op of a slot (conv/dwsep carry weights; pools and identity none)."""

  def __init__(self, op: OpSpec, cin: int, base_width: int, act: str, *, rngs: nnx.Rngs,
               conv: str = "switched"):
    self.op = op
    self.act = ACTIVATIONS[act]
    cout = op.out_width(cin, base_width)
    # conv: 'switched' by default (a sampled search runs the candidate inside lax.switch).
    if op.kind == "conv":
      self.conv = QConv(cin, cout, op.kernel, stride=op.stride, impl=conv, rngs=rngs)
      self.bn = batch_norm(cout, rngs)
    elif op.kind == "dwsep":
      self.depthwise = QConv(cin, cin, op.kernel, stride=op.stride, groups=cin, impl=conv,
                             rngs=rngs)
      self.pointwise = QConv(cin, cout, 1, signed_input=True, impl=conv, rngs=rngs)
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
  """The branch of one candidate exit position; returns logits [B, num_classes].

  ``classifier`` reads the widest final width state; ``narrow_classifiers`` (only where
  the ops can end narrower) the others, narrowest first.
  """

  def __init__(self, spec: BranchSpec, num_classes: int, act: str, signed_features: bool, *,
               rngs: nnx.Rngs, conv: str = "switched"):
    """``conv``: the candidates' convolution (``models.layers.CONV_IMPLS``)."""
    self.spec = spec
    self.width_states = states = width_states(spec)
    self.quantizers = nnx.List()
    self.slots = nnx.List()
    for slot, names in enumerate(spec.slot_ops):
      cin = max(states[slot])
      self.quantizers.append(ActQuant(signed=signed_features))
      self.slots.append(nnx.List([CandidateOp(parse_op(n), cin, spec.base_width, act, rngs=rngs,
                                              conv=conv) for n in names]))
    self.classifier = QDense(states[-1][-1], num_classes, signed_input=signed_features, rngs=rngs)
    if len(states[-1]) > 1:
      self.narrow_classifiers = nnx.List([
          QDense(w, num_classes, signed_input=signed_features, rngs=rngs) for w in states[-1][:-1]])

  def classifiers(self) -> dict:
    """``{final width: its classifier}``."""
    narrow = list(self.narrow_classifiers) if hasattr(self, "narrow_classifiers") else []
    return dict(zip(self.width_states[-1], narrow + [self.classifier]))

  def __call__(self, x, op_probs, bits: Sequence[int], bit_probs, train: bool, *,
               single_path: bool = False):
    """``op_probs`` [depth, K]; ``bit_probs`` [num_bits].

    ``single_path``: ``op_probs`` rows are one-hot samples; only the sampled
    candidate of each slot runs (``lax.switch``) and its output is multiplied by
    its (straight-through) one-hot weight, so the gradient still reaches the logits.
    """
    x = resize(x, self.spec.slot_res[0])
    if single_path:
      return self._single_path(x, op_probs, bits, bit_probs, train)
    spec = self.spec
    states = {spec.base_width: (1.0, x)}        # width -> (mass, mean of its paths)
    for slot, candidates in enumerate(self.slots):
      last = slot + 1 == spec.depth
      cin = max(self.width_states[slot])
      sums, masses = {}, {}
      # One call per (state, candidate): BatchNorm's batch statistics stay those of one
      # state (pooling the states would make a path's normalization depend on the others,
      # even where they carry no probability).
      for mass, z in states.values():
        zq = self.quantizers[slot](_pad_channels(z, cin), bits, bit_probs)
        for k, op in enumerate(candidates):
          y = op(z, zq, bits, bit_probs, train)
          y = jnp.mean(y, axis=(1, 2)) if last else resize(y, spec.slot_res[slot + 1])
          w = mass if len(candidates) == 1 else op_probs[slot, k] * mass
          d = y.shape[-1]
          sums[d] = w * y if d not in sums else sums[d] + w * y
          masses[d] = w if d not in masses else masses[d] + w
      states = {d: (masses[d], sums[d] if isinstance(masses[d], float)
                    else sums[d] / jnp.maximum(masses[d], _MASS_FLOOR)) for d in sums}
    logits = 0.0
    for width, clf in self.classifiers().items():
      if width in states:
        mass, z = states[width]
        out = clf(z, bits, bit_probs)
        logits = out if isinstance(mass, float) and mass == 1.0 else logits + mass * out
    return logits

  def _single_path(self, x, op_probs, bits, bit_probs, train):
    """One sampled path on one tensor padded to each slot's widest input; the classifier
    of the path's width reads it (the state masses carry no gradient here: the
    straight-through weight of the sampled op does)."""
    spec, states = self.spec, self.width_states
    mass = {spec.base_width: 1.0}
    for slot, candidates in enumerate(self.slots):
      cin, last = max(states[slot]), slot + 1 == spec.depth
      x = _pad_channels(x, cin)
      x_quantized = self.quantizers[slot](x, bits, bit_probs)
      out_width = max(states[slot + 1])

      def run(op, x=x, x_quantized=x_quantized, last=last, slot=slot, out_width=out_width):
        y = op(x, x_quantized, bits, bit_probs, train)
        y = jnp.mean(y, axis=(1, 2)) if last else resize(y, spec.slot_res[slot + 1])
        return _pad_channels(y, out_width)

      probs = jax.lax.stop_gradient(op_probs[slot])
      new = {}
      for k, name in enumerate(spec.slot_ops[slot]):
        for c, m in mass.items():
          d = parse_op(name).out_width(c, spec.base_width)
          new[d] = new.get(d, 0.0) + (m if len(candidates) == 1 else probs[k] * m)
      mass = new
      if len(candidates) == 1:
        x = run(candidates[0])
      else:
        index = jnp.argmax(op_probs[slot])
        x = op_probs[slot, index] * _switch(index, candidates, run)
    logits = 0.0
    for width, clf in self.classifiers().items():
      logits = logits + mass[width] * clf(x[:, :width], bits, bit_probs)
    return logits


def _switch(index, candidates, run):
  """``run(candidates[index])`` with only that candidate executed (``nnx.switch``
  carries the candidates' weights and BatchNorm updates through ``lax.switch``)."""
  branches = [lambda cands, k=k: run(cands[k]) for k in range(len(candidates))]
  return nnx.switch(index, branches, candidates)
