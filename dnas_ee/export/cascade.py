"""The early-exit runtime on LiteRT: segments run one after another, per sample, and a
sample stops at the first exit whose confidence reaches its threshold.

The decision is the JAX evaluation's (``exits.decision.first_exit``): the exit's
int8 logits are dequantized with the model's output scale, scored on the host by
``host_confidence`` and compared with the calibrated threshold (``conf >= tau``).
A segment hands its int8 features to the next one unchanged (the export gives
both tensors the same scale and zero point; ``Cascade`` checks it).

Example:
  >>> cascade = Cascade("runs/digits/export")                   # doctest: +SKIP
  >>> cascade.predict_one(image)       # (prediction, exit, confidence) # doctest: +SKIP
  >>> out = cascade.run(images)        # predictions, exits, confidences # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from dnas_ee.exits.confidence import host_confidence
from dnas_ee.export.extra import require_extra


@dataclasses.dataclass
class CascadeResult:
  """Per sample: the prediction, the exit taken (0-based, final last) and its confidence."""
  predictions: np.ndarray
  exits: np.ndarray
  confidences: np.ndarray


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
  """Float to int8 as the model's input quantizer rounds (float32, half to even), then
  clamped to the int8 range."""
  q = np.round(np.asarray(x, np.float32) / np.float32(scale)) + zero_point
  return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
  return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


class _Segment:
  """One ``.tflite`` segment: its interpreter and named int8 inputs and outputs."""

  def __init__(self, path: Path, entry: dict, interpreter_cls, num_threads: int):
    self.exit = int(entry["exit"])
    self.final = bool(entry["final"])
    self.threshold = np.inf if entry["threshold"] is None else float(entry["threshold"])
    self.interpreter = interpreter_cls(model_path=str(path), num_threads=num_threads)
    self.interpreter.allocate_tensors()
    (self.input,) = self.interpreter.get_input_details()
    # The logits are the rank-2 output, the features handed on the rank-4 one.
    self.outputs = {("logits" if len(d["shape"]) == 2 else "features"): d
                    for d in self.interpreter.get_output_details()}

  def params(self, detail) -> tuple[float, int]:
    scale, zero = detail["quantization"]
    return float(scale), int(zero)

  def __call__(self, x: np.ndarray) -> dict:
    it = self.interpreter
    it.set_tensor(self.input["index"], x)
    it.invoke()
    return {name: it.get_tensor(d["index"]) for name, d in self.outputs.items()}


class Cascade:
  """The exported early-exit network, run by the LiteRT interpreter.

  Attributes:
    manifest: the export's ``manifest.json``.
    measure: the confidence measure the thresholds are expressed in.
    thresholds: ``[E-1]`` early-exit thresholds of the run (``+inf``: exit not exported).
    num_exits: exits of the network, final included.
  """

  def __init__(self, export_dir, *, num_threads: int = 1):
    interpreter = require_extra("ai_edge_litert.interpreter").Interpreter
    export_dir = Path(export_dir)
    path = export_dir / "manifest.json"
    if not path.exists():
      raise FileNotFoundError(f"{path} is missing: run `dnas-ee export --workdir RUN --out "
                              f"{export_dir}` first")
    self.export_dir = export_dir
    self.manifest = json.loads(path.read_text())
    self.measure = self.manifest["confidence"]
    self.thresholds = np.asarray([np.inf if t is None else t
                                  for t in self.manifest["thresholds"]], np.float64)
    self.num_exits = len(self.thresholds) + 1
    self.segments = [_Segment(export_dir / s["file"], s, interpreter, num_threads)
                     for s in self.manifest["segments"]]
    self._image_shape = tuple(self.manifest["input"]["shape"])
    self._input_params = self.segments[0].params(self.segments[0].input)
    for a, b in zip(self.segments, self.segments[1:]):
      if a.params(a.outputs["features"]) != b.params(b.input):
        raise ValueError(f"{export_dir}: segment {b.exit} does not read the int8 features of "
                         f"the segment before it with the same scale; re-export")

  def predict_one(self, image) -> tuple[int, int, float]:
    """One sample through the segments until an exit fires.

    Args:
      image: float ``[H, W, C]`` image, normalized like the training data.

    Returns:
      ``(prediction, exit index, confidence)``.
    """
    x = quantize(np.asarray(image, np.float32).reshape((1,) + self._image_shape),
                 *self._input_params)
    for seg in self.segments:
      out = seg(x)
      logits = dequantize(out["logits"], *seg.params(seg.outputs["logits"]))
      conf = float(host_confidence(logits, self.measure)[0])
      if seg.final or conf >= seg.threshold:
        return int(logits[0].argmax()), seg.exit, conf
      x = out["features"]
    raise AssertionError("the final segment always returns")

  def run(self, images) -> CascadeResult:
    """``predict_one`` over every image (batch 1: the segments are compiled for it)."""
    images = np.asarray(images, np.float32)
    n = len(images)
    out = CascadeResult(np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.float32))
    for i in range(n):
      out.predictions[i], out.exits[i], out.confidences[i] = self.predict_one(images[i])
    return out

  def exit_logits(self, images) -> np.ndarray:
    """``[E, n, K]`` dequantized logits of every exported exit, no exiting (others NaN)."""
    images = np.asarray(images, np.float32)
    k = self.manifest["num_classes"]
    logits = np.full((self.num_exits, len(images), k), np.nan, np.float32)
    for i, image in enumerate(images):
      x = quantize(image.reshape((1,) + self._image_shape), *self._input_params)
      for seg in self.segments:
        out = seg(x)
        logits[seg.exit, i] = dequantize(out["logits"], *seg.params(seg.outputs["logits"]))[0]
        x = out.get("features")
    return logits

  def measure_latency(self, images, *, warmup: int = 5) -> dict:
    """Batch-1 wall-clock latency of ``predict_one`` per sample (median, mean, p90, s)."""
    images = np.asarray(images, np.float32)
    for i in range(warmup):
      self.predict_one(images[i % len(images)])
    times = []
    for image in images:
      t0 = time.perf_counter()
      self.predict_one(image)
      times.append(time.perf_counter() - t0)
    t = np.asarray(times)
    return dict(median_s=float(np.median(t)), mean_s=float(t.mean()),
                p90_s=float(np.quantile(t, 0.9)), samples=int(len(t)))
