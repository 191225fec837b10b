"""The deployed network as integer LiteRT models, one per segment (needs the extra).

Each segment is written as a TensorFlow function by ``graph.forward_segment`` over
``TfOps``, where every quantization point is a ``FakeQuant`` op with its range
stated, and converted by ``tf.lite.TFLiteConverter`` with int8 inputs and outputs.
The converter's quantization-aware path takes the ranges of the ``FakeQuant`` ops
as they are: the trained weight scales and PACT clips (``graph.QuantSpec``), and the
calibrated ranges of the tensors the fake-quantized network keeps in float. Nothing
is re-estimated from data by the converter.

Why not jax2tf: ``jax2tf.convert`` serializes StableHLO; with tensorflow 2.21 the
converter keeps JAX's ``quant.fake_quant`` composites (the annotation that carries a
scale through StableHLO) as float ``STABLEHLO_COMPOSITE`` ops instead of
quantizing with them, and jax 0.10 writes StableHLO 1.15, which tensorflow 2.21
(1.13.7) cannot read at all when composites are present. The standalone
``litert-converter`` package, which reads newer StableHLO, pins
``typing-extensions<4.13`` (through ``xdsl``) where this project's ``chex`` needs
``>=4.15``. The graph here is built from the same folded weights and the same
forward code as the JAX calibration (``graph.JaxOps``).
"""
from __future__ import annotations

import numpy as np

from dnas_ee.export.extra import require_extra
from dnas_ee.export.graph import FoldedConv, QuantSpec, carrier_range, forward_segment

tf = require_extra("tensorflow")


def _fq(x, lo: float, hi: float, narrow: bool = False):
  return tf.quantization.fake_quant_with_min_max_args(x, min=float(lo), max=float(hi),
                                                      num_bits=8, narrow_range=narrow)


class TfOps:
  """``graph.forward_segment``'s ops in TensorFlow, every tensor annotated for int8.

  The converter quantizes an op only where its output is annotated (a ``FakeQuant``
  right after it): a MINIMUM between an accumulator and its ``FakeQuant`` leaves the
  accumulator float. So a quantizer annotates its input first, with its own carrier
  range, and an accumulator (a convolution's, a mean's, an average's) is requantized
  once, straight to the quantizer's grid. An int8 tensor of another scale is
  requantized by a 1x1 depthwise convolution of weight 1: XNNPACK rescales a
  convolution's accumulator in float32, where the QUANTIZE and RELU kernels'
  fixed-point rescaling of an int8 input rounds twice (``docs/export.md``).

  Attributes:
    ranges: key -> the int8 ``(min, max)`` of each observed tensor (``graph.export_ranges``).
  """

  def __init__(self, ranges: dict):
    self.ranges = ranges
    self._annotated: set = set()
    # An average (and a max pool of one) is left unannotated until its reader is known:
    # ref -> (its input's range, build(lo, hi): the tensor with the average on that grid).
    self._pending: dict = {}

  def _annotate(self, x, lo: float, hi: float):
    y = _fq(x, lo, hi)
    self._annotated.add(y.ref())
    return y

  def _settle(self, x, lo: float | None = None, hi: float | None = None):
    """``x`` as an int8 tensor: a pending average on the grid ``(lo, hi)`` (a quantizer's
    carrier: one rounding of its accumulator), else on its input's grid."""
    if x.ref() not in self._pending:
      return x
    rng, build = self._pending[x.ref()]
    return build(*(rng if lo is None else (lo, hi)))

  def _on_grid(self, x, op):
    """``op(x)`` for an op that keeps its input's grid (max pool, zero padding): on a
    pending average it stays pending (it commutes with rounding), so that the
    average is still rounded once, onto its reader's grid."""
    if x.ref() not in self._pending:
      return op(x)
    rng, build = self._pending[x.ref()]
    y = op(build(*rng))     # a placeholder; the converter drops it when unread
    self._pending[y.ref()] = (rng, lambda lo, hi: op(build(lo, hi)))
    return y

  def _constant_depthwise(self, x, kernel: int, stride: int, weight: float):
    """A depthwise convolution whose weights are all ``weight`` (int8 127 each)."""
    c = x.shape[-1]
    layer = FoldedConv(np.full((kernel, kernel, 1, c), 127, np.int8),
                       np.full((c,), weight / 127, np.float64), np.zeros((c,), np.float32),
                       stride, c, 8, None)
    return self.conv(x, layer)

  def _requantize(self, x):
    if len(x.shape) == 4:
      return self._constant_depthwise(x, 1, 1, 1.0)
    c = x.shape[-1]
    return tf.reshape(self._constant_depthwise(tf.reshape(x, (-1, 1, 1, c)), 1, 1, 1.0), (-1, c))

  def quantize(self, x, q: QuantSpec):
    lo, hi = carrier_range(q)
    x = self._settle(x, lo, hi)
    if x.ref() in self._annotated and not np.allclose(_fq_range(x), (lo, hi), rtol=1e-6):
      x = self._requantize(x)
    x = self._annotate(x, lo, hi)
    if q.needs_clamp:
      # MINIMUM/MAXIMUM keep their input's scale, the quantizer's: the bounds (0 or
      # -L and L steps) are integers of it.
      x = self._annotate(tf.clip_by_value(x, q.lo, q.hi), lo, hi)
    return x

  def conv(self, x, layer: FoldedConv):
    x = self._settle(x)
    w = layer.weights
    dense = w.ndim == 2
    if dense:   # as a 1x1 convolution: per-output-channel scales on the kernel's last axis
      w, x = w.reshape((1, 1) + w.shape), tf.reshape(x, (-1, 1, 1, w.shape[0]))
    scale = layer.int8_weights[1].astype(np.float32)
    wq = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        tf.constant(w), -127 * scale, 127 * scale, num_bits=8, narrow_range=True)
    if dense:
      return tf.reshape(tf.nn.conv2d(x, wq, 1, "SAME") + layer.bias, (-1, w.shape[-1]))
    k = w.shape[0]
    if layer.groups == 1:
      y = tf.nn.conv2d(x, wq, layer.stride, "SAME")
    elif layer.groups == w.shape[-1] and w.shape[2] == 1:
      y = tf.nn.depthwise_conv2d(x, tf.reshape(wq, (k, k, w.shape[-1], 1)),
                                 (1, layer.stride, layer.stride, 1), "SAME")
    else:
      raise ValueError(f"no LiteRT form for a grouped convolution with {layer.groups} groups")
    return y + layer.bias

  def act(self, x, name):
    return tf.nn.relu6(x) if name == "relu6" else tf.nn.relu(x)

  def add(self, a, b):
    return self._settle(a) + self._settle(b)

  def mean(self, x):
    return tf.reduce_mean(self._settle(x), axis=[1, 2])

  def pool(self, x, kind, kernel, stride):
    if kind == "maxpool":     # TF's SAME max pool ignores the padding, as a -inf pad does
      return self._on_grid(x, lambda t: tf.nn.max_pool2d(t, kernel, stride, "SAME"))
    # The model's average pool counts the padded zeros, as a SAME convolution does: a
    # depthwise convolution of weights 1/k^2, whose accumulator a quantizer reads exactly.
    x = self._settle(x)
    y = self._constant_depthwise(x, kernel, stride, 1.0 / kernel ** 2)
    self._pending[y.ref()] = (_fq_range(x), lambda lo, hi: self._annotate(y, lo, hi))
    return y

  def resize(self, x, res):
    h = x.shape[1]
    if h == res:
      return x
    if h > res:
      f = h // res
      return self.pool(x, "avgpool", f, f)
    return tf.compat.v1.image.resize_nearest_neighbor(self._settle(x), (res, res),
                                                      align_corners=False,
                                                      half_pixel_centers=False)

  def pad_channels(self, x, width):
    extra = width - x.shape[-1]
    if extra == 0:
      return x
    return self._on_grid(x, lambda t: tf.pad(t, [(0, 0)] * (len(t.shape) - 1) + [(0, extra)]))

  def observe(self, x, key):
    if x.ref() in self._annotated:     # an int8 tensor already (an identity slot's input)
      return x
    lo, hi = self.ranges[key]
    return self._annotate(self._settle(x, lo, hi), lo, hi)


def _fq_range(x) -> tuple[float, float]:
  """The (min, max) of the ``FakeQuant`` that gave ``x`` its grid (through the ops that
  keep their input's grid: max pool, padding, reshape)."""
  op = x.op
  while op.type != "FakeQuantWithMinMaxArgs":
    op = op.inputs[0].op
  return float(op.get_attr("min")), float(op.get_attr("max"))


def convert_segment(model, plan, ranges: dict, input_shape, input_range) -> bytes:
  """The int8 ``.tflite`` flatbuffer of one segment.

  Args:
    model: the derived network module.
    plan: the segment (``executor.SegmentPlan``).
    ranges: int8 ranges of the observed tensors (``graph.export_ranges``).
    input_shape: ``(H, W, C)`` of the segment's input (image or features).
    input_range: ``(lo, hi)`` real range of the int8 input (the stem quantizer's for
      the image, the previous segment's feature range otherwise).
  """
  ops = TfOps(ranges)

  @tf.function(input_signature=[tf.TensorSpec((1,) + tuple(input_shape), tf.float32)],
               autograph=False)
  def segment(x):
    x = ops._annotate(x, *input_range)
    features, logits = forward_segment(ops, model, plan, x)
    return {"logits": logits} if features is None else {"features": features, "logits": logits}

  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [segment.get_concrete_function()], segment)
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.inference_input_type = tf.int8
  converter.inference_output_type = tf.int8
  return converter.convert()
