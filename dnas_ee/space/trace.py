"""Describe any network by running it: op signatures from a traced jaxpr.

A cost model needs each layer as an ``OpSignature``. Instead of writing them by
hand (FBNet's and ProxylessNAS's users fill a layer table), trace the network:
``jax.make_jaxpr`` lowers a Flax NNX or Linen module, or any JAX function, to
primitives, and every convolution (any groups, strides and padding), dense
layer, window pooling and global pooling in it becomes one signature.

What counts as a layer: an op whose *activation* operand depends on the traced
input. Weights are closed over (an NNX module, ``partial(linen_model.apply,
variables)``, ``partial(f, params)``), so they enter the jaxpr as constants and
a matmul of activation x weight is a dense layer, while ``softmax``/``norm``
arithmetic and elementwise ops (bias, ReLU, BatchNorm, residual adds) are not
counted: a trace cannot tell a residual add from an activation function's own
additions, and they are a small share of an accelerator's time.

Conventions of the signatures (``OpSignature`` is NHWC with SAME padding):
- per sample: the batch axis (axis 0 of the example input) is dropped;
- a conv whose padding is not SAME is described as the SAME conv with the same
  output size (input ``h_out * stride``), so MACs and outputs are exact;
- a dense layer on a ``[B, C]`` activation is ``dense``; on ``[B, H, W, C]`` or
  ``[B, T, C]`` it is the 1x1 ``conv`` it computes;
- global pooling (a sum/max over both spatial axes) is ``gap``.

Example:
  >>> import jax, jax.numpy as jnp
  >>> w = jnp.ones((3, 3, 1, 4))
  >>> conv = lambda x: jax.lax.conv_general_dilated(x, w, (2, 2), "SAME",
  ...     dimension_numbers=("NHWC", "HWIO", "NHWC"))
  >>> trace_ops(conv, jnp.ones((1, 8, 8, 1)))
  (OpSignature(op='conv', h=8, w=8, cin=1, cout=4, kernel=3, stride=2, groups=1, w_bits=8, a_bits=8),)
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import jax

from dnas_ee.space.signature import OpSignature

Bits = int | tuple[int, int]


class TraceError(ValueError):
  """A layer that has no ``OpSignature`` (the message names it and what to do)."""


@dataclasses.dataclass(frozen=True)
class TracedNetwork:
  """An early-exit network as per-segment layer lists.

  The network is a chain: backbone segment 1, then early exit 1 on its output,
  backbone segment 2, exit 2, ..., and the last backbone segment (with the final
  classifier). A sample leaving at exit ``j`` runs backbone segments ``1..j`` and
  exits ``1..j``.

  Attributes:
    backbone: ``N`` tuples of ``OpSignature``, one per backbone segment.
    exits: ``N - 1`` tuples, one per early exit (exit i follows segment i).
  """
  backbone: tuple[tuple[OpSignature, ...], ...]
  exits: tuple[tuple[OpSignature, ...], ...]

  @property
  def segments(self) -> tuple[tuple[OpSignature, ...], ...]:
    """Every segment in the traced order: backbone 1, exit 1, backbone 2, ..."""
    out = []
    for i, block in enumerate(self.backbone):
      out.append(block)
      if i < len(self.exits):
        out.append(self.exits[i])
    return tuple(out)

  @property
  def macs(self) -> int:
    """MACs of the whole network (every backbone segment and every exit)."""
    return sum(sig.macs for seg in self.segments for sig in seg)


def _bits_pair(bits: Bits) -> tuple[int, int]:
  if isinstance(bits, int) and not isinstance(bits, bool):
    return bits, bits
  if (isinstance(bits, tuple) and len(bits) == 2
      and all(isinstance(b, int) and not isinstance(b, bool) for b in bits)):
    return bits
  raise ValueError(f"bits={bits!r}: give an int (weights and activations) or a "
                   "(w_bits, a_bits) pair")


def _same_input(size: int, out: int, stride: int) -> int:
  """The input size whose SAME-padded output is ``out`` (``size`` itself when it is)."""
  return size if -(-size // stride) == out else out * stride


def _spatial_square(what: str, values: Sequence[int], eqn) -> int:
  if len(values) == 1:
    return values[0]
  if len(values) == 2 and values[0] == values[1]:
    return values[0]
  raise TraceError(f"{what} {tuple(values)} of `{eqn.primitive.name}` "
                   f"({_shapes(eqn)}) has no OpSignature (square 1-D/2-D kernels and "
                   "strides only); make it square or cost that layer by hand")


def _shapes(eqn) -> str:
  ins = ", ".join(str(tuple(v.aval.shape)) for v in eqn.invars if hasattr(v.aval, "shape"))
  return f"operands {ins} -> {tuple(eqn.outvars[0].aval.shape)}"


def _conv(eqn, bits) -> OpSignature:
  p = eqn.params
  if any(d != 1 for d in p["lhs_dilation"]):
    raise TraceError(f"transposed convolution ({_shapes(eqn)}, lhs_dilation="
                     f"{p['lhs_dilation']}) has no OpSignature; cost it by hand")
  if p["batch_group_count"] != 1:
    raise TraceError(f"convolution with batch_group_count={p['batch_group_count']} "
                     f"({_shapes(eqn)}) is a weight gradient, not a layer: trace the "
                     "forward pass only")
  lhs_spec, rhs_spec, out_spec = p["dimension_numbers"]
  lhs, rhs = eqn.invars[0].aval.shape, eqn.invars[1].aval.shape
  out = eqn.outvars[0].aval.shape
  sizes = [lhs[d] for d in lhs_spec[2:]]
  outs = [out[d] for d in out_spec[2:]]
  kernel = _spatial_square("kernel", [rhs[d] for d in rhs_spec[2:]], eqn)
  stride = _spatial_square("stride", list(p["window_strides"]), eqn)
  h = _same_input(sizes[0], outs[0], stride)
  w = _same_input(sizes[1], outs[1], stride) if len(sizes) > 1 else 1
  return OpSignature("conv", h, w, lhs[lhs_spec[1]], rhs[rhs_spec[0]], kernel, stride,
                     p["feature_group_count"], *bits)


def _dense(eqn, act_index: int, bits) -> OpSignature:
  (contract_a, contract_b), (batch_a, batch_b) = eqn.params["dimension_numbers"]
  if batch_a or batch_b:
    raise TraceError(f"batched matmul with weights ({_shapes(eqn)}) has no OpSignature "
                     "(per-head weights?); cost that layer by hand")
  act = eqn.invars[act_index].aval.shape
  weight = eqn.invars[1 - act_index].aval.shape
  contract_act = contract_a if act_index == 0 else contract_b
  contract_w = contract_b if act_index == 0 else contract_a
  cin = math.prod(act[d] for d in contract_act)
  cout = math.prod(s for d, s in enumerate(weight) if d not in contract_w)
  free = [s for d, s in enumerate(act) if d not in contract_act][1:]  # [0]: the batch axis
  if not free:
    return OpSignature("dense", 1, 1, cin, cout, 1, 1, 1, *bits)
  if len(free) > 2:
    raise TraceError(f"dense layer on a {len(act)}-D activation ({_shapes(eqn)}) has no "
                     "OpSignature (at most [B, H, W, C]); reshape before it")
  return OpSignature("conv", free[0], free[1] if len(free) > 1 else 1, cin, cout, 1, 1, 1,
                     *bits)


def _window_pool(eqn, bits) -> OpSignature | None:
  p = eqn.params
  shape = eqn.invars[0].aval.shape
  out = eqn.outvars[0].aval.shape
  window, strides = p["window_dimensions"], p["window_strides"]
  spatial = [d for d in range(1, len(shape)) if window[d] > 1 or strides[d] > 1]
  if not spatial:
    return None  # a 1x1 window, stride 1: the identity
  if len(shape) == 4 and len(spatial) < 2:
    spatial = [1, 2] if 3 not in spatial else [2, 3]  # NHWC (Flax) unless the window says NCHW
  channels = [d for d in range(1, len(shape)) if d not in spatial]
  if len(channels) != 1 or len(spatial) > 2:
    raise TraceError(f"pooling over axes {spatial} of a {len(shape)}-D tensor ({_shapes(eqn)}) "
                     "has no OpSignature (NHWC or NCHW pooling only)")
  kernel = _spatial_square("pooling window", [window[d] for d in spatial], eqn)
  stride = _spatial_square("pooling stride", [strides[d] for d in spatial], eqn)
  h = _same_input(shape[spatial[0]], out[spatial[0]], stride)
  w = _same_input(shape[spatial[1]], out[spatial[1]], stride) if len(spatial) > 1 else 1
  c = shape[channels[0]]
  op = "maxpool" if eqn.primitive.name == "reduce_window_max" else "avgpool"
  return OpSignature(op, h, w, c, c, kernel, stride, c, *bits)


def _global_pool(eqn, bits) -> OpSignature | None:
  shape = eqn.invars[0].aval.shape
  axes = tuple(sorted(eqn.params["axes"]))
  if len(shape) == 6 and axes in ((2, 4), (3, 5)) and shape[axes[0]] == shape[axes[1]]:
    # A non-overlapping f x f average pool written as reshape + mean ([B, H/f, f, W/f, f, C],
    # or NCHW's [B, C, H/f, f, W/f, f]; ``models.layers.resize``).
    f, c = shape[axes[0]], shape[5] if axes == (2, 4) else shape[1]
    h, w = shape[axes[0] - 1] * f, shape[axes[1] - 1] * f
    return OpSignature("avgpool", h, w, c, c, f, f, c, *bits)
  if len(shape) != 4 or 0 in axes or len(axes) != 2:
    return None  # softmax, norms, losses: not a layer
  (c_axis,) = [d for d in range(1, 4) if d not in axes]
  c = shape[c_axis]
  return OpSignature("gap", shape[axes[0]], shape[axes[1]], c, c, 1, 1, 1, *bits)


def _sub_jaxprs(eqn) -> list:
  subs = []
  for value in eqn.params.values():
    for sub in (value if isinstance(value, (list, tuple)) else [value]):
      if hasattr(sub, "eqns"):
        subs.append(sub)
      elif hasattr(sub, "jaxpr") and hasattr(sub.jaxpr, "eqns"):
        subs.append(sub.jaxpr)
  return subs


def _walk(jaxpr, depends: list[bool], bits, found: list[OpSignature]) -> list[bool]:
  """Appends the layers of ``jaxpr`` to ``found``; returns which outputs depend on the input."""
  dep = {v: d for v, d in zip(jaxpr.invars, depends)}
  is_dep = lambda v: not hasattr(v, "val") and bool(dep.get(v, False))  # literals: constants
  for eqn in jaxpr.eqns:
    ins = [is_dep(v) for v in eqn.invars]
    name = eqn.primitive.name
    sig = None
    if name == "conv_general_dilated" and ins[0]:
      sig = _conv(eqn, bits)
    elif name == "dot_general" and any(ins):
      if all(ins):
        raise TraceError(f"matmul of two activations ({_shapes(eqn)}, attention?) has no "
                         "OpSignature; trace the network without it and cost it by hand")
      sig = _dense(eqn, 0 if ins[0] else 1, bits)
    elif name in ("reduce_window_max", "reduce_window_sum") and ins[0]:
      sig = _window_pool(eqn, bits)
    elif name in ("reduce_sum", "reduce_max") and ins[0]:
      sig = _global_pool(eqn, bits)
    if sig is not None:
      found.append(sig)
    outs = [any(ins)] * len(eqn.outvars)
    subs = _sub_jaxprs(eqn)
    if name in ("cond", "while"):
      for sub in subs:
        inner: list[OpSignature] = []
        _walk(sub, [any(ins)] * len(sub.invars), bits, inner)
        if inner:
          raise TraceError(f"layers inside `{name}` ({len(inner)} found) run a data-dependent "
                           "number of times; trace the network without it (or each branch apart)")
    elif subs:
      # Call-like primitives (jit, custom_jvp/vjp, remat, scan) carry one body that takes
      # the equation's operands (a custom rule's other jaxprs are derivatives: skipped).
      sub = subs[0]
      sub_in = ins if len(sub.invars) == len(ins) else [any(ins)] * len(sub.invars)
      inner = []
      sub_out = _walk(sub, sub_in, bits, inner)
      found.extend(inner * (eqn.params.get("length", 1) if name == "scan" else 1))
      if len(sub_out) == len(eqn.outvars):
        outs = sub_out
    for v, d in zip(eqn.outvars, outs):
      dep[v] = d
  return [is_dep(v) for v in jaxpr.outvars]


def trace_ops(fn: Callable, x: Any, *, bits: Bits = 8) -> tuple[OpSignature, ...]:
  """The layers ``fn`` runs on one sample of ``x``, in execution order.

  Args:
    fn: a function of one argument (the input batch) with its weights closed over:
      an NNX module in eval mode, ``partial(linen_model.apply, variables)``, or any
      JAX function. Nothing is computed: ``fn`` is traced on shapes.
    x: an example input (array or ``jax.ShapeDtypeStruct``), batch on axis 0; a
      pytree is accepted, every leaf counting as input.
    bits: weight and activation bit widths written into every signature, an int
      or a ``(w_bits, a_bits)`` pair.

  Returns:
    One ``OpSignature`` per convolution, dense layer, window pooling and global
    pooling, per sample.

  Raises:
    TraceError: a layer that ``OpSignature`` cannot describe (non-square kernel,
      transposed conv, matmul of two activations, layers in a ``cond``/``while``).
  """
  bits = _bits_pair(bits)
  closed = jax.make_jaxpr(fn)(x)
  found: list[OpSignature] = []
  _walk(closed.jaxpr, [True] * len(closed.jaxpr.invars), bits, found)
  return tuple(found)


def trace_exit_network(segments: Sequence[Callable], x: Any, *,
                       bits: Bits | Sequence[Bits] = 8) -> TracedNetwork:
  """Traces an early-exit network given as its segments, in order.

  Args:
    segments: ``[stage1, exit1, stage2, exit2, ..., stageN]`` (an odd number of
      callables): each backbone stage takes the previous stage's output (the first
      takes ``x``), each exit takes the output of the stage before it; its own
      output is not used further.
    x: an example input batch (array or ``jax.ShapeDtypeStruct``); a batch of one
      is enough, nothing is computed.
    bits: one int or ``(w_bits, a_bits)`` pair for every segment, or one per
      segment (in the order of ``segments``).

  Returns:
    A ``TracedNetwork`` with ``N`` backbone and ``N - 1`` exit layer lists.

  Example::

    net = trace_exit_network([model.stage1, model.exit1, model.stage2], x[:1])
    [sum(s.macs for s in seg) for seg in net.segments]  # MACs per segment
  """
  segments = list(segments)
  if len(segments) % 2 != 1:
    raise ValueError(f"{len(segments)} segments: give [stage1, exit1, stage2, ..., stageN], "
                     "an odd number of callables (the network ends with a backbone stage)")
  is_pair = isinstance(bits, tuple) and len(bits) == 2 and all(isinstance(b, int) for b in bits)
  if isinstance(bits, (list, tuple)) and not is_pair:
    per_segment = list(bits)
    if len(per_segment) != len(segments):
      raise ValueError(f"{len(per_segment)} bit widths for {len(segments)} segments: give one "
                       "per segment, or one for all")
  else:
    per_segment = [bits] * len(segments)
  backbone, exits = [], []
  h = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), x)
  for i, (seg, seg_bits) in enumerate(zip(segments, per_segment)):
    ops = trace_ops(seg, h, bits=seg_bits)
    if i % 2:
      exits.append(ops)
    else:
      backbone.append(ops)
      if i + 1 < len(segments):
        h = jax.eval_shape(seg, h)
  return TracedNetwork(tuple(backbone), tuple(exits))


__all__ = ["TraceError", "TracedNetwork", "trace_exit_network", "trace_ops"]
