"""Backbone registry: a backbone is a stem, a list of blocks and a head, as data.

Each block is one quantization group and one unit of the early-exit cost
(``B_i`` in docs/design.md). A new backbone is one ``register_backbone`` call whose
function turns a config into a ``BackboneSpec``; block kinds are implemented in
``dnas_ee.models.blocks`` and describe their own layers here (``block_signatures``),
so MACs and LUT keys come from the same shapes as the modules (tested against
the traced convolutions).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from dnas_ee.space.signature import OpSignature

BLOCK_KINDS = ("resnet_basic", "mbv2_ir")


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  """One backbone block. ``res``/``cin`` describe its input."""
  kind: str
  res: int
  cin: int
  cout: int
  stride: int = 1
  expansion: int = 1   # MobileNetV2 expansion factor t

  @property
  def out_res(self) -> int:
    return -(-self.res // self.stride)


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
  """A backbone as data: input shape, stem width, blocks and head."""
  name: str
  image_shape: tuple[int, int, int]
  num_classes: int
  stem_width: int
  blocks: tuple[BlockSpec, ...]
  head_width: int = 0          # >0: a 1x1 conv to this width before pooling (MobileNetV2)
  activation: str = "relu"     # 'relu' or 'relu6'
  signed_features: bool = False  # block outputs can be negative (linear bottlenecks)

  @property
  def feature_width(self) -> int:
    return self.head_width or self.blocks[-1].cout


def block_signatures(block: BlockSpec, bits: int) -> list[OpSignature]:
  """The layers of one block at ``bits`` (weights and input activations)."""
  r, ro = block.res, block.out_res
  if block.kind == "resnet_basic":
    sigs = [OpSignature("conv", r, r, block.cin, block.cout, 3, block.stride, 1, bits, bits),
            OpSignature("conv", ro, ro, block.cout, block.cout, 3, 1, 1, bits, bits)]
    if block.stride != 1 or block.cin != block.cout:
      sigs.append(OpSignature("conv", r, r, block.cin, block.cout, 1, block.stride, 1, bits, bits))
    return sigs + [OpSignature("add", ro, ro, block.cout, block.cout, 1, 1, 1, bits, bits)]
  if block.kind == "mbv2_ir":
    hidden = block.cin * block.expansion
    sigs = []
    if block.expansion != 1:
      sigs.append(OpSignature("conv", r, r, block.cin, hidden, 1, 1, 1, bits, bits))
    sigs += [OpSignature("conv", r, r, hidden, hidden, 3, block.stride, hidden, bits, bits),
             OpSignature("conv", ro, ro, hidden, block.cout, 1, 1, 1, bits, bits)]
    if block.stride == 1 and block.cin == block.cout:
      sigs.append(OpSignature("add", ro, ro, block.cout, block.cout, 1, 1, 1, bits, bits))
    return sigs
  raise ValueError(f"unknown block kind {block.kind!r}; use one of {BLOCK_KINDS}")


def stem_signatures(spec: BackboneSpec, bits: int) -> list[OpSignature]:
  h, w, c = spec.image_shape
  return [OpSignature("conv", h, w, c, spec.stem_width, 3, 1, 1, bits, bits)]


def head_signatures(spec: BackboneSpec, bits: int) -> list[OpSignature]:
  r, c = spec.blocks[-1].out_res, spec.blocks[-1].cout
  sigs = []
  if spec.head_width:
    sigs.append(OpSignature("conv", r, r, c, spec.head_width, 1, 1, 1, bits, bits))
    c = spec.head_width
  return sigs + [OpSignature("gap", r, r, c, c, 1, 1, 1, bits, bits),
                 OpSignature("dense", 1, 1, c, spec.num_classes, 1, 1, 1, bits, bits)]


_BACKBONES: dict[str, Callable[..., BackboneSpec]] = {}


def register_backbone(name: str):
  """Decorator: ``fn(image_shape, num_classes, **options) -> BackboneSpec``."""
  def wrap(fn):
    _BACKBONES[name] = fn
    return fn
  return wrap


def registered_backbones() -> tuple[str, ...]:
  return tuple(sorted(_BACKBONES))


def build_backbone(name: str, image_shape, num_classes: int, **options) -> BackboneSpec:
  if name not in _BACKBONES:
    raise ValueError(f"unknown backbone {name!r}; registered: {registered_backbones()}")
  try:
    return _BACKBONES[name](tuple(image_shape), num_classes, **options)
  except TypeError as err:
    raise ValueError(f"backbone {name!r} got options it does not take: {err}") from None


@register_backbone("resnet_cifar")
def resnet_cifar(image_shape, num_classes, *, stage_widths=(16, 32, 64), blocks_per_stage=(3, 3, 3),
                 stem_width=16) -> BackboneSpec:
  """ResNet for CIFAR (He et al. 2016, option B shortcuts): ResNet-20 is 3 x 3 blocks.

  ``blocks_per_stage`` may be an int (same for every stage) or one int per stage.
  """
  if isinstance(blocks_per_stage, int):
    blocks_per_stage = (blocks_per_stage,) * len(stage_widths)
  if len(blocks_per_stage) != len(stage_widths):
    raise ValueError("backbone.blocks_per_stage needs one entry per stage_widths entry")
  blocks, res, cin = [], image_shape[0], stem_width
  for stage, (width, count) in enumerate(zip(stage_widths, blocks_per_stage)):
    for i in range(count):
      stride = 2 if stage > 0 and i == 0 else 1
      blocks.append(BlockSpec("resnet_basic", res, cin, width, stride))
      res, cin = blocks[-1].out_res, width
  return BackboneSpec("resnet_cifar", tuple(image_shape), num_classes, stem_width, tuple(blocks))


# (expansion t, width c, repeats n, stride s) of MobileNetV2 (Sandler et al. 2018), with
# the CIFAR variant's stride 1 in the stem and the second stage (32x32 inputs).
_MBV2_CIFAR = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
               (6, 160, 3, 2), (6, 320, 1, 1))


def _scaled(width: float) -> int:
  return max(8, int(width + 4) // 8 * 8)


@register_backbone("mobilenetv2_cifar")
def mobilenetv2_cifar(image_shape, num_classes, *, width_mult=1.0, head_width=1280,
                      stages=_MBV2_CIFAR) -> BackboneSpec:
  """MobileNetV2 for 32x32 inputs (17 inverted-residual blocks at width 1.0)."""
  blocks, res = [], image_shape[0]
  cin = _scaled(32 * width_mult)
  stem = cin
  for t, c, n, s in stages:
    cout = _scaled(c * width_mult)
    for i in range(n):
      blocks.append(BlockSpec("mbv2_ir", res, cin, cout, s if i == 0 else 1, t))
      res, cin = blocks[-1].out_res, cout
  head = _scaled(head_width * max(1.0, width_mult)) if head_width else 0
  return BackboneSpec("mobilenetv2_cifar", tuple(image_shape), num_classes, stem, tuple(blocks),
                      head_width=head, activation="relu6", signed_features=True)
