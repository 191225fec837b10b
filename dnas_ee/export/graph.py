"""The deployed form of a derived network: folded integer weights, quantizers, segments.

A derived ``Supernet`` computes with fake quantization: per-output-channel weights
``w = q * s`` (``|q| <= 2^(b-1) - 1``) and PACT activations on a ``b``-bit grid of
their learned clip. An integer runtime stores ``q`` and computes on int8 tensors.
This module turns the network into that form, framework-free:

* BatchNorm folds into the convolution before it. The fold multiplies each output
  channel by ``a = gamma / sqrt(var + eps)``, so the folded weights are
  ``q * (s * a)``: the same integers ``q`` (sign flipped where ``a < 0``) with a
  per-channel scale ``|s * a|``. A 2/4-bit layer keeps its 3/15 levels exactly.
* An activation quantizer of clip ``c`` at ``b`` bits becomes an int8 tensor of
  scale ``c / L`` (``L = 2^b - 1`` unsigned, ``2^(b-1) - 1`` signed) and zero point
  -128 (unsigned) or 0 (signed), clamped to ``[0, c]`` or ``[-c, c]`` (``QuantSpec``):
  the b-bit levels are a subset of the int8 carrier, and the clamp bounds are
  integers of it, so a quantizer whose input is a convolution's accumulator is
  computed exactly.
* Every other tensor (a block's output, a residual sum, a pooled vector, the logits)
  is float in the fake-quantized network but int8 in the runtime: its range is
  calibrated (``observe``) on the calibration split. These are the places where the
  integer network can differ: a quantizer fed by such a tensor rounds twice. The
  second rounding is made exact where it can be (``int8_range``): the tensor's step
  is chosen so that its first consumer quantizer's step is an odd multiple of it,
  and then every int8 value lies strictly inside one cell of the coarser grid.

The forward pass is written once (``forward_segment``) over a small backend of ops,
so the same code calibrates the ranges in JAX and builds the TensorFlow graph the
LiteRT converter reads (``dnas_ee.export.litert``). It mirrors
``models.blocks``/``models.branch`` layer for layer; ``tests/export`` checks that,
with every ``observe`` the identity, it reproduces the model's logits.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from dnas_ee.exits.executor import SegmentPlan
from dnas_ee.models.layers import clip_ratios
from dnas_ee.quant import quantize_weights
from dnas_ee.space.ops import parse_op


@dataclasses.dataclass(frozen=True)
class QuantSpec:
  """An activation quantizer on an int8 carrier.

  Attributes:
    scale: the b-bit step ``clip / L``.
    zero_point: int8 zero point (-128 unsigned, 0 signed).
    lo, hi: the clamp in real units (``0`` or ``-clip``, ``clip``).
    bits: the searched width.
    signed: symmetric (True) or ``[0, clip]``.
    clip: the learned clip at this width (``|clip| * clip_ratio + 1e-6``, as the model).
  """
  scale: float
  zero_point: int
  lo: float
  hi: float
  bits: int
  signed: bool
  clip: float

  @property
  def needs_clamp(self) -> bool:
    """Whether the int8 range is wider than the quantizer's (then the graph clamps)."""
    return self.lo > (-128 - self.zero_point) * self.scale * (1 + 1e-6) or \
        self.hi < (127 - self.zero_point) * self.scale * (1 - 1e-6)


def quant_spec(clip_param: float, bits: int, signed: bool) -> QuantSpec:
  """The ``QuantSpec`` of an ``ActQuant`` whose learned clip is ``clip_param`` at ``bits``."""
  clip = float(np.float32(abs(np.float32(clip_param) * clip_ratios((bits,))[0])) + np.float32(1e-6))
  levels = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1
  if bits > 8:
    raise ValueError(f"a {bits}-bit activation does not fit an int8 carrier")
  scale = float(jnp.float32(clip) / jnp.float32(levels))   # the model's step, as XLA divides
  return QuantSpec(scale, 0 if signed else -128, -clip if signed else 0.0, clip, bits, signed,
                   clip)


def carrier_range(q: QuantSpec) -> tuple[float, float]:
  """The real range of a quantizer's int8 carrier: scale ``q.scale``, zero point
  ``q.zero_point``."""
  return (-128 - q.zero_point) * q.scale, (127 - q.zero_point) * q.scale


def int8_range(lo: float, hi: float, consumer_step: float | None = None) -> tuple[float, float]:
  """The int8 range ``(min, max)`` of a calibrated tensor.

  The range holds 0 on its grid (zero padding and ReLU need an exact zero): the
  zero point is an integer. With ``consumer_step`` (the step of the quantizer that
  reads the tensor), the step is ``consumer_step / k`` for the largest odd ``k`` that
  still covers ``[lo, hi]``: the consumer's cell edges then fall halfway between int8
  levels, so requantizing the int8 tensor rounds exactly as the float one would.
  """
  lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
  step = max(hi - lo, 1e-6) / 255
  if consumer_step is not None and consumer_step >= step:
    k = int(consumer_step / step)
    k -= 1 - k % 2                  # odd: an even k puts cell edges on int8 levels
    step = consumer_step / k
  # Zero on the grid: an integer zero point, the negative part rounded up to whole steps.
  below = min(int(np.ceil(-lo / step - 1e-9)), 255)
  return -below * step, (255 - below) * step


@dataclasses.dataclass(frozen=True)
class FoldedConv:
  """A convolution (or dense layer) with BatchNorm folded in and integer weights.

  Attributes:
    q: int8 weights, HWIO (dense: ``[cin, cout]``); depthwise: ``[k, k, 1, C]``.
    scale: ``[cout]`` positive per-channel scale (``w = q * scale``).
    bias: ``[cout]`` float bias (BatchNorm's shift, or the dense bias).
    stride, groups: as the layer.
    bits: the searched weight width.
    in_quant: the input quantizer, or None (the input is used as it comes).
  """
  q: np.ndarray
  scale: np.ndarray
  bias: np.ndarray
  stride: int
  groups: int
  bits: int
  in_quant: QuantSpec | None

  @property
  def weights(self) -> np.ndarray:
    return (self.q.astype(np.float64) * self.scale).astype(np.float32)

  @property
  def carrier_multiplier(self) -> int:
    """``m``: the int8 carrier stores ``q * m`` at scale ``scale / m``, the same weights.

    The runtime adds the bias on the accumulator's grid ``s_in * s_w``: at 2 bits with
    a coarse input step that grid is a sizable fraction of the output step, so the
    rounded bias alone would move outputs across rounding edges. ``m`` makes the grid
    ``m`` times finer (127 at 2 bits) and keeps the ``2^b - 1`` levels per channel.
    """
    return max(127 // max(int(np.abs(self.q).max()), 1), 1)

  @property
  def int8_weights(self) -> tuple[np.ndarray, np.ndarray]:
    """``(q * m, scale / m)``: the weights as the runtime stores them."""
    m = self.carrier_multiplier
    return (self.q.astype(np.int32) * m).astype(np.int8), self.scale / m


def _value(v) -> np.ndarray:
  return np.asarray(v[...], np.float64)


def fold_conv(conv, bn, bits: int, in_signed: bool | None = None) -> FoldedConv:
  """Folds a ``QConv`` (or ``QDense``) and its BatchNorm (None: no BatchNorm)."""
  w = _value(conv.kernel)
  qmax = 2.0 ** (bits - 1) - 1
  max_abs = np.max(np.abs(w), axis=tuple(range(w.ndim - 1)))
  step = np.maximum(max_abs, 1e-8).astype(np.float32) / np.float32(qmax)
  # The model's own quantizer, run by JAX: trained 2-bit weights sit on the rounding
  # edge +-max/2 (to the last bit), where numpy's and XLA's float32 quotients round
  # to different sides.
  wq = np.asarray(quantize_weights(jnp.asarray(w, jnp.float32), bits), np.float64)
  q = np.round(wq / step).astype(np.int64)
  if bn is not None:
    a = _value(bn.scale) / np.sqrt(_value(bn.var) + bn.epsilon)
    bias = _value(bn.bias) - _value(bn.mean) * a
  else:
    a = np.ones_like(max_abs)
    bias = _value(conv.bias) if hasattr(conv, "bias") else np.zeros_like(max_abs)
  scale = step.astype(np.float64) * a
  q = (q * np.sign(np.where(scale == 0, 1.0, scale))).astype(np.int8)
  scale = np.maximum(np.abs(scale), 1e-12)
  in_quant = None
  if getattr(conv, "in_quant", None) is not None:
    in_quant = quant_spec(float(conv.in_quant.clip[...]), bits, conv.in_quant.signed)
  return FoldedConv(q, scale, bias.astype(np.float32), getattr(conv, "stride", 1),
                    getattr(conv, "groups", 1), bits, in_quant)


# --------------------------------------------------------------------------- forward


def _act(name: str):
  return "relu6" if name == "relu6" else "relu"


def conv_layer(ops, x, layer: FoldedConv, act: str | None = None, *, quantized_input=None):
  """``act(conv(Q(x)))``; ``quantized_input`` reuses a quantization already made."""
  if quantized_input is None:
    quantized_input = x if layer.in_quant is None else ops.quantize(x, layer.in_quant)
  y = ops.conv(quantized_input, layer)
  return ops.act(y, act) if act else y


def _block(ops, x, block, spec, act: str, bits: int, key: str):
  """One backbone block (``models.blocks``), deployed."""
  if spec.kind == "resnet_basic":
    y = conv_layer(ops, x, fold_conv(block.conv1, block.bn1, bits), act)
    y = ops.observe(conv_layer(ops, y, fold_conv(block.conv2, block.bn2, bits)), f"{key}/conv2")
    if block.has_proj:
      short = ops.observe(conv_layer(ops, x, fold_conv(block.proj, block.proj_bn, bits)),
                          f"{key}/proj")
    else:
      short = x
    return ops.observe(ops.act(ops.add(y, short), act), f"{key}/out")
  if spec.kind == "mbv2_ir":
    y = x
    if block.has_expand:
      y = conv_layer(ops, y, fold_conv(block.expand, block.expand_bn, bits), act)
    y = conv_layer(ops, y, fold_conv(block.depthwise, block.depthwise_bn, bits), act)
    y = ops.observe(conv_layer(ops, y, fold_conv(block.project, block.project_bn, bits)),
                    f"{key}/project")
    return ops.observe(ops.add(x, y), f"{key}/out") if block.residual else y
  raise ValueError(f"no deployed form for backbone block kind {spec.kind!r}")


def _branch(ops, x, branch, spec, num_classes: int, act: str, bits: int, key: str):
  """One exit branch of a derived network (``models.branch.ExitBranch``), deployed."""
  width = spec.max_width()
  x = ops.resize(x, spec.slot_res[0])
  for slot, candidates in enumerate(branch.slots):
    (op,) = candidates
    kind = op.op.kind
    if kind == "identity":
      y = x
    elif kind in ("maxpool", "avgpool"):
      y = ops.pool(x, kind, op.op.kernel, op.op.stride)
    else:
      xq = ops.quantize(x, quant_spec(float(branch.quantizers[slot].clip[...]), bits,
                                      branch.quantizers[slot].signed))
      if kind == "conv":
        y = conv_layer(ops, None, fold_conv(op.conv, op.bn, bits), act, quantized_input=xq)
      else:
        # The depthwise accumulator goes straight into the pointwise input quantizer.
        dw = conv_layer(ops, None, fold_conv(op.depthwise, None, bits), quantized_input=xq)
        y = conv_layer(ops, dw, fold_conv(op.pointwise, op.bn, bits), act)
      # Resized, padded or averaged before the next quantizer: an int8 tensor of its own.
      y = ops.observe(y, f"{key}/slot{slot}")
    if slot + 1 == spec.depth:
      y = ops.mean(y)   # straight into the classifier's input quantizer
    else:
      y = ops.resize(y, spec.slot_res[slot + 1])
    x = ops.pad_channels(y, width)
  return ops.observe(conv_layer(ops, x, fold_conv(branch.classifier, None, bits)),
                     f"{key}/logits")


def forward_segment(ops, model, plan: SegmentPlan, x):
  """``(features, logits)`` of one segment (``features`` None for the final one).

  ``x`` is the image for the first segment, else the previous segment's features.
  """
  space = model.space
  spec = space.backbone
  act = _act(spec.activation)
  if plan.start == 0:
    x = conv_layer(ops, x, fold_conv(model.stem.conv, model.stem.bn, space.edge_bits), act)
    x = ops.observe(x, "stem")
  for i in range(plan.start, plan.stop):
    x = _block(ops, x, model.blocks[i], spec.blocks[i], act, space.backbone_bits[i][0],
               f"block{i}")
  if plan.final:
    head = model.head
    y = x
    if head.has_conv:
      y = ops.observe(conv_layer(ops, y, fold_conv(head.conv, head.bn, space.edge_bits), act),
                      "head/conv")
    y = ops.mean(y)    # straight into the classifier's input quantizer
    logits = ops.observe(conv_layer(ops, y, fold_conv(head.dense, None, space.edge_bits)),
                         "head/logits")
    return None, logits
  j = plan.exit
  logits = _branch(ops, x, model.branches[j], space.branches[j], spec.num_classes, act,
                   space.branch_bits[j][0], f"exit{j}")
  return x, logits


def feature_key(plan: SegmentPlan) -> str:
  """The observed tensor a (non-final) segment hands to the next one."""
  return "stem" if plan.stop == 0 else f"block{plan.stop - 1}/out"


def weight_layers(model) -> list[tuple[str, Any, Any, int]]:
  """Every weighted layer of a derived network: (name, layer, batchnorm, bits)."""
  space = model.space
  out = [("stem/conv", model.stem.conv, model.stem.bn, space.edge_bits)]
  for i, block in enumerate(model.blocks):
    bits = space.backbone_bits[i][0]
    for name in ("conv1", "conv2", "proj", "expand", "depthwise", "project"):
      if hasattr(block, name):
        bn = getattr(block, {"conv1": "bn1", "conv2": "bn2"}.get(name, f"{name}_bn"))
        out.append((f"block{i}/{name}", getattr(block, name), bn, bits))
  for j, branch in enumerate(model.branches):
    bits = space.branch_bits[j][0]
    for slot, (op,) in enumerate(branch.slots):
      for name in ("conv", "depthwise", "pointwise"):
        if hasattr(op, name):
          bn = None if name == "depthwise" else op.bn
          out.append((f"exit{j}/slot{slot}/{name}", getattr(op, name), bn, bits))
    out.append((f"exit{j}/classifier", branch.classifier, None, bits))
  if model.head.has_conv:
    out.append(("head/conv", model.head.conv, model.head.bn, space.edge_bits))
  out.append(("head/dense", model.head.dense, None, space.edge_bits))
  return out


def packed_weight_bytes(model) -> dict:
  """Weight storage at the searched widths (bit-packed) and on int8 carriers, in bytes."""
  packed = carrier = biases = 0
  for _, layer, _, bits in weight_layers(model):
    n = int(np.prod(layer.kernel[...].shape))
    cout = int(layer.kernel[...].shape[-1])
    packed += n * bits / 8
    carrier += n
    biases += 4 * cout + 4 * cout          # int32 bias + float32 scale per output channel
  return dict(packed_weights=packed, int8_weights=carrier, per_channel_bias_and_scale=biases)


def is_derived(model) -> bool:
  space = model.space
  return bool(space.fixed_exits) and space.num_bits == 1 and all(
      len(ops) == 1 for b in space.branches for ops in b.slot_ops)


def check_model(model) -> None:
  if not is_derived(model):
    raise ValueError("export needs a derived network (a Supernet on genotype_space(genotype))")
  for b in model.space.branches:
    for names in b.slot_ops:
      parse_op(names[0])


def merged_model(setup, state):
  """The network module of ``pipeline.load_trained``'s ``(setup, state)``."""
  return nnx.merge(setup.graphdef, state.params, setup.arch, state.stats, copy=True)


# --------------------------------------------------------------------------- JAX ops


class JaxOps:
  """The deployed forward pass in JAX, float except at the quantizers (the fake-quantized
  network's own arithmetic); ``observe`` records each calibrated tensor's range.

  Attributes:
    ranges: key -> (min, max) over every batch run so far (``calibrating``).
    consumers: key -> steps of the quantizers that read the observed tensor directly,
      in the order the forward pass reads it.
  """

  def __init__(self, calibrating: bool = False):
    self.calibrating = calibrating
    self.ranges: dict[str, tuple[float, float]] = {}
    self.consumers: dict[str, list[float]] = {}
    self._observed: dict[int, tuple[str, Any]] = {}   # id -> (key, tensor): who feeds a quantizer

  def quantize(self, x, q: QuantSpec):
    import jax.numpy as jnp
    hit = self._observed.get(id(x))
    if self.calibrating and hit is not None and hit[1] is x:
      steps = self.consumers.setdefault(hit[0], [])
      if q.scale not in steps:
        steps.append(q.scale)
    clipped = jnp.clip(x, q.lo, q.hi)
    return jnp.round(clipped / np.float32(q.scale)) * np.float32(q.scale)

  def conv(self, x, layer: FoldedConv):
    import jax
    w = layer.weights
    if w.ndim == 2:
      return x @ w + layer.bias
    y = jax.lax.conv_general_dilated(x, w, (layer.stride, layer.stride), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     feature_group_count=layer.groups)
    return y + layer.bias

  def act(self, x, name):
    import jax
    return jax.nn.relu6(x) if name == "relu6" else jax.nn.relu(x)

  def add(self, a, b):
    return a + b

  def mean(self, x):
    return x.mean(axis=(1, 2))

  def pool(self, x, kind, kernel, stride):
    from dnas_ee.models.layers import pool
    return pool(x, kind, kernel, stride)

  def resize(self, x, res):
    from dnas_ee.models.layers import resize
    return resize(x, res)

  def pad_channels(self, x, width):
    import jax.numpy as jnp
    extra = width - x.shape[-1]
    return x if extra == 0 else jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, extra)])

  def observe(self, x, key):
    if self.calibrating:
      lo, hi = float(x.min()), float(x.max())
      old = self.ranges.get(key)
      self.ranges[key] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
      self._observed[id(x)] = (key, x)
    return x


class Int8Ops(JaxOps):
  """``JaxOps`` with every observed tensor rounded to its int8 grid (``ranges``: the
  exported ``(min, max)``): the integer network's arithmetic, simulated in float."""

  def __init__(self, ranges: dict):
    super().__init__()
    self.int8_ranges = ranges

  def observe(self, x, key):
    import jax.numpy as jnp
    lo, hi = self.int8_ranges[key]
    step = np.float32((hi - lo) / 255)
    return jnp.clip(jnp.round(x / step), round(lo / step), round(hi / step)) * step


def calibrate(model, plans, images, batch_size: int = 256) -> tuple[dict, dict]:
  """``(ranges, consumers)`` of every observed tensor of every segment over ``images``
  (the calibration split): its (min, max) and the steps of the quantizers reading it."""
  ops = JaxOps(calibrating=True)
  for start in range(0, len(images), batch_size):
    x = np.asarray(images[start:start + batch_size], np.float32)
    for plan in plans:
      features, _ = forward_segment(ops, model, plan, x)
      x = features
    ops._observed.clear()
  return ops.ranges, ops.consumers


def export_ranges(ranges: dict, consumers: dict) -> dict:
  """key -> the int8 ``(min, max)`` the export gives each observed tensor (``int8_range``,
  exact for the first quantizer that reads it)."""
  return {k: int8_range(lo, hi, (consumers.get(k) or [None])[0]) for k, (lo, hi) in ranges.items()}


def int8_logits(model, plans, ranges, images) -> list[np.ndarray]:
  """Per segment ``[n, K]`` logits of the integer network simulated in float
  (``Int8Ops``; ``ranges`` from ``export_ranges``)."""
  ops = Int8Ops(ranges)
  outs, x = [], np.asarray(images, np.float32)
  for plan in plans:
    x, logits = forward_segment(ops, model, plan, x)
    outs.append(np.asarray(logits))
  return outs


def reference_logits(model, plans, images) -> list[np.ndarray]:
  """Per segment ``[n, K]`` logits of the deployed form in float (no int8 rounding of
  the observed tensors): equals the model's own logits up to float rounding."""
  ops = JaxOps()
  outs, x = [], np.asarray(images, np.float32)
  for plan in plans:
    x, logits = forward_segment(ops, model, plan, x)
    outs.append(np.asarray(logits))
  return outs
