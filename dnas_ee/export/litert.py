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
from dnas_ee.export.graph import FoldedConv, QuantSpec, forward_segment

tf = require_extra("tensorflow")


def _fq(x, lo: float, hi: float, narrow: bool = False):
  return tf.quantization.fake_quant_with_min_max_args(x, min=float(lo), max=float(hi),
                                                      num_bits=8, narrow_range=narrow)


def observed_range(lo: float, hi: float) -> tuple[float, float]:
  """The int8 range of a calibrated tensor: [min, max] widened to hold 0 (zero padding
  and ReLU need an exact zero), never empty."""
  lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
  if hi - lo < 1e-6:
    hi = lo + 1e-6
  return lo, hi


def quant_range(q: QuantSpec) -> tuple[float, float]:
  """The int8 carrier's real range of a quantizer: scale ``q.scale``, zero point ``q.zero_point``."""
  return (-128 - q.zero_point) * q.scale, (127 - q.zero_point) * q.scale


class TfOps:
  """``graph.forward_segment``'s ops in TensorFlow, every tensor annotated for int8."""

  def __init__(self, ranges: dict):
    self.ranges = ranges

  def quantize(self, x, q: QuantSpec):
    if q.needs_clamp:
      # MINIMUM/MAXIMUM keep their input's scale: fed by an accumulator, that scale is
      # the quantizer's and the bounds (0 or -L and L steps) are integers of it.
      x = tf.clip_by_value(x, q.lo, q.hi)
    return _fq(x, *quant_range(q))

  def conv(self, x, layer: FoldedConv):
    w = layer.weights
    dense = w.ndim == 2
    if dense:   # as a 1x1 convolution: per-output-channel scales on the kernel's last axis
      w, x = w.reshape((1, 1) + w.shape), tf.reshape(x, (-1, 1, 1, w.shape[0]))
    scale = layer.scale.astype(np.float32)
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
    return a + b

  def mean(self, x):
    return tf.reduce_mean(x, axis=[1, 2])

  def _same_pad(self, x, kernel, stride):
    pads = []
    for n in x.shape[1:3]:
      out = -(-n // stride)
      total = max((out - 1) * stride + kernel - n, 0)
      pads.append((total // 2, total - total // 2))
    return tf.pad(x, [(0, 0), pads[0], pads[1], (0, 0)]) if any(sum(p) for p in pads) else x

  def pool(self, x, kind, kernel, stride):
    if kind == "maxpool":     # TF's SAME max pool ignores the padding, as a -inf pad does
      return tf.nn.max_pool2d(x, kernel, stride, "SAME")
    # The model's average pool counts the padded zeros: pad explicitly, then VALID.
    return tf.nn.avg_pool2d(self._same_pad(x, kernel, stride), kernel, stride, "VALID")

  def resize(self, x, res):
    h = x.shape[1]
    if h == res:
      return x
    if h > res:
      f = h // res
      return self.pool(x, "avgpool", f, f)
    return tf.compat.v1.image.resize_nearest_neighbor(x, (res, res), align_corners=False,
                                                      half_pixel_centers=False)

  def pad_channels(self, x, width):
    extra = width - x.shape[-1]
    return x if extra == 0 else tf.pad(x, [(0, 0)] * (len(x.shape) - 1) + [(0, extra)])

  def observe(self, x, key):
    return _fq(x, *observed_range(*self.ranges[key]))


def convert_segment(model, plan, ranges: dict, input_shape, input_range) -> bytes:
  """The int8 ``.tflite`` flatbuffer of one segment.

  Args:
    model: the derived network module.
    plan: the segment (``executor.SegmentPlan``).
    ranges: calibrated ranges of the observed tensors (``graph.calibrate_ranges``).
    input_shape: ``(H, W, C)`` of the segment's input (image or features).
    input_range: ``(lo, hi)`` real range of the int8 input (the stem quantizer's for
      the image, the previous segment's feature range otherwise).
  """
  ops = TfOps(ranges)

  @tf.function(input_signature=[tf.TensorSpec((1,) + tuple(input_shape), tf.float32)],
               autograph=False)
  def segment(x):
    x = _fq(x, *input_range)
    features, logits = forward_segment(ops, model, plan, x)
    return {"logits": logits} if features is None else {"features": features, "logits": logits}

  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [segment.get_concrete_function()], segment)
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.inference_input_type = tf.int8
  converter.inference_output_type = tf.int8
  return converter.convert()
