"""Backbone blocks, stem and head; each block kind matches ``space.backbones.block_signatures``."""
from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
from flax import nnx

from dnas_ee.models.layers import ACTIVATIONS, QConv, QDense, batch_norm
from dnas_ee.space.backbones import BackboneSpec, BlockSpec


class ResNetBasicBlock(nnx.Module):
  """conv3x3-BN-ReLU-conv3x3-BN + shortcut (1x1 conv-BN when the shape changes), ReLU."""

  def __init__(self, spec: BlockSpec, act: str, signed_input: bool, *, rngs: nnx.Rngs):
    del signed_input  # inputs follow a ReLU
    self.act = ACTIVATIONS[act]
    self.conv1 = QConv(spec.cin, spec.cout, 3, stride=spec.stride, signed_input=False, rngs=rngs)
    self.bn1 = batch_norm(spec.cout, rngs)
    self.conv2 = QConv(spec.cout, spec.cout, 3, signed_input=False, rngs=rngs)
    self.bn2 = batch_norm(spec.cout, rngs)
    self.has_proj = spec.stride != 1 or spec.cin != spec.cout
    if self.has_proj:
      self.proj = QConv(spec.cin, spec.cout, 1, stride=spec.stride, signed_input=False, rngs=rngs)
      self.proj_bn = batch_norm(spec.cout, rngs)

  def __call__(self, x, bits: Sequence[int], probs, train: bool):
    ura = not train
    y = self.act(self.bn1(self.conv1(x, bits, probs), use_running_average=ura))
    y = self.bn2(self.conv2(y, bits, probs), use_running_average=ura)
    shortcut = self.proj_bn(self.proj(x, bits, probs), use_running_average=ura) if self.has_proj else x
    return self.act(y + shortcut)


class InvertedResidualBlock(nnx.Module):
  """MobileNetV2 block: 1x1 expand-BN-ReLU6, 3x3 depthwise-BN-ReLU6, 1x1 project-BN (+x)."""

  def __init__(self, spec: BlockSpec, act: str, signed_input: bool, *, rngs: nnx.Rngs):
    self.act = ACTIVATIONS[act]
    hidden = spec.cin * spec.expansion
    self.has_expand = spec.expansion != 1
    if self.has_expand:
      self.expand = QConv(spec.cin, hidden, 1, signed_input=signed_input, rngs=rngs)
      self.expand_bn = batch_norm(hidden, rngs)
    self.depthwise = QConv(hidden, hidden, 3, stride=spec.stride, groups=hidden,
                           signed_input=signed_input and not self.has_expand, rngs=rngs)
    self.depthwise_bn = batch_norm(hidden, rngs)
    self.project = QConv(hidden, spec.cout, 1, signed_input=False, rngs=rngs)
    self.project_bn = batch_norm(spec.cout, rngs)
    self.residual = spec.stride == 1 and spec.cin == spec.cout

  def __call__(self, x, bits: Sequence[int], probs, train: bool):
    ura = not train
    y = x
    if self.has_expand:
      y = self.act(self.expand_bn(self.expand(y, bits, probs), use_running_average=ura))
    y = self.act(self.depthwise_bn(self.depthwise(y, bits, probs), use_running_average=ura))
    y = self.project_bn(self.project(y, bits, probs), use_running_average=ura)
    return x + y if self.residual else y


BLOCK_MODULES = {"resnet_basic": ResNetBasicBlock, "mbv2_ir": InvertedResidualBlock}


class Stem(nnx.Module):
  def __init__(self, spec: BackboneSpec, *, rngs: nnx.Rngs):
    self.act = ACTIVATIONS[spec.activation]
    self.conv = QConv(spec.image_shape[2], spec.stem_width, 3, signed_input=True, rngs=rngs)
    self.bn = batch_norm(spec.stem_width, rngs)

  def __call__(self, x, bits, probs, train: bool):
    return self.act(self.bn(self.conv(x, bits, probs), use_running_average=not train))


class Head(nnx.Module):
  """Optional 1x1 conv-BN-act, global average pooling, dense classifier."""

  def __init__(self, spec: BackboneSpec, *, rngs: nnx.Rngs):
    self.act = ACTIVATIONS[spec.activation]
    c = spec.blocks[-1].cout
    self.has_conv = bool(spec.head_width)
    if self.has_conv:
      self.conv = QConv(c, spec.head_width, 1, signed_input=spec.signed_features, rngs=rngs)
      self.bn = batch_norm(spec.head_width, rngs)
    signed = spec.signed_features and not self.has_conv
    self.dense = QDense(spec.feature_width, spec.num_classes, signed_input=signed, rngs=rngs)

  def __call__(self, x, bits, probs, train: bool):
    if self.has_conv:
      x = self.act(self.bn(self.conv(x, bits, probs), use_running_average=not train))
    return self.dense(jnp.mean(x, axis=(1, 2)), bits, probs)
