"""Tracing a user's own network into op signatures: equal to a hand count of its layers."""
import functools

import flax.linen as linen
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from dnas_ee.space.signature import OpSignature
from dnas_ee.space.trace import TraceError, trace_exit_network, trace_ops


class HandCnn(nnx.Module):
  """16x16x3 -> conv s2 -> grouped conv -> VALID conv -> pools -> dense (a user's own CNN)."""

  def __init__(self, rngs):
    self.conv1 = nnx.Conv(3, 8, (3, 3), strides=2, rngs=rngs)
    self.grouped = nnx.Conv(8, 16, (3, 3), feature_group_count=4, rngs=rngs)
    self.bn = nnx.BatchNorm(16, rngs=rngs)
    self.valid = nnx.Conv(16, 24, (3, 3), strides=2, padding="VALID", rngs=rngs)
    self.dense = nnx.Linear(24, 10, rngs=rngs)

  def __call__(self, x):
    x = nnx.relu(self.conv1(x))                      # 16x16 -> 8x8
    x = nnx.relu(self.bn(self.grouped(x)))           # 8x8, groups 4
    x = nnx.max_pool(x, (2, 2), (2, 2))              # 8x8 -> 4x4
    x = nnx.relu(self.valid(nnx.avg_pool(x, (3, 3), (1, 1), padding="SAME")))  # 4x4 -> 1x1
    return self.dense(x.mean(axis=(1, 2)))


HAND_COUNT = [  # (signature, MACs counted by hand)
    (OpSignature("conv", 16, 16, 3, 8, 3, 2, 1), 8 * 8 * 8 * 3 * 9),
    (OpSignature("conv", 8, 8, 8, 16, 3, 1, 4), 8 * 8 * 16 * (8 // 4) * 9),
    (OpSignature("maxpool", 8, 8, 16, 16, 2, 2, 16), 0),
    (OpSignature("avgpool", 4, 4, 16, 16, 3, 1, 16), 0),
    # VALID 3x3 stride 2 on 4x4 gives 1x1: described as the SAME conv with that output.
    (OpSignature("conv", 2, 2, 16, 24, 3, 2, 1), 1 * 1 * 24 * 16 * 9),
    (OpSignature("gap", 1, 1, 24, 24, 1, 1, 1), 0),
    (OpSignature("dense", 1, 1, 24, 10, 1, 1, 1), 24 * 10),
]


def test_traced_nnx_cnn_equals_hand_count():
  model = HandCnn(nnx.Rngs(0))
  model.eval()
  traced = trace_ops(model, jnp.zeros((3, 16, 16, 3)))   # any batch: signatures are per sample
  assert list(traced) == [sig for sig, _ in HAND_COUNT]
  assert [sig.macs for sig in traced] == [macs for _, macs in HAND_COUNT]
  assert [(s.h_out, s.w_out, s.cout) for s in traced[:2]] == [(8, 8, 8), (8, 8, 16)]


def test_bits_and_abstract_input():
  model = HandCnn(nnx.Rngs(0))
  model.eval()
  traced = trace_ops(model, jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32), bits=(4, 8))
  assert {(s.w_bits, s.a_bits) for s in traced} == {(4, 8)}


class LinenNet(linen.Module):
  @linen.compact
  def __call__(self, x):
    x = linen.Conv(6, (5, 5), strides=(1, 1), feature_group_count=3)(x)
    x = linen.Dense(12)(x)                 # dense on a feature map: a 1x1 conv
    return linen.Dense(4)(x.reshape((x.shape[0], -1)))


def test_linen_module_and_dense_on_feature_maps():
  model = LinenNet()
  x = jnp.zeros((2, 6, 6, 3))
  variables = model.init(jax.random.key(0), x)
  traced = trace_ops(functools.partial(model.apply, variables), x)
  assert traced == (OpSignature("conv", 6, 6, 3, 6, 5, 1, 3),
                    OpSignature("conv", 6, 6, 6, 12, 1, 1, 1),
                    OpSignature("dense", 1, 1, 6 * 6 * 12, 4, 1, 1, 1))


def test_pure_jax_nchw_and_jit_inside():
  w = jnp.ones((5, 2, 3, 3))     # OIHW

  @jax.jit
  def f(x):                       # NCHW conv, then a NCHW max pool
    y = jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)))
    return jax.lax.reduce_window(y, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

  assert trace_ops(f, jnp.zeros((1, 2, 8, 8))) == (
      OpSignature("conv", 8, 8, 2, 5, 3, 1, 1), OpSignature("maxpool", 8, 8, 5, 5, 2, 2, 5))


def test_exit_network_segments_and_per_segment_bits():
  conv = lambda cin, cout, s: nnx.Conv(cin, cout, (3, 3), strides=s, rngs=nnx.Rngs(0))
  stage1, stage2 = conv(1, 4, 1), conv(4, 8, 2)
  head = nnx.Linear(4, 10, rngs=nnx.Rngs(0))
  exit1 = lambda h: head(h.mean(axis=(1, 2)))
  net = trace_exit_network([stage1, exit1, stage2], jnp.zeros((1, 8, 8, 1)), bits=[8, 4, (2, 8)])
  assert net.backbone == ((OpSignature("conv", 8, 8, 1, 4, 3, 1, 1),),
                          (OpSignature("conv", 8, 8, 4, 8, 3, 2, 1, 2, 8),))
  assert net.exits == ((OpSignature("gap", 8, 8, 4, 4, 1, 1, 1, 4, 4),
                        OpSignature("dense", 1, 1, 4, 10, 1, 1, 1, 4, 4)),)
  assert net.macs == 8 * 8 * 4 * 9 + 4 * 4 * 8 * 4 * 9 + 40
  with pytest.raises(ValueError, match="odd number"):
    trace_exit_network([stage1, exit1], jnp.zeros((1, 8, 8, 1)))


def test_untraceable_layer_is_named():
  w = jnp.ones((3, 1, 2, 4))      # a 3x1 kernel has no OpSignature
  f = lambda x: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
  with pytest.raises(TraceError, match=r"kernel \(3, 1\)"):
    trace_ops(f, jnp.zeros((1, 8, 8, 2)))
  attention = lambda x: jnp.einsum("btd,bsd->bts", x, x)
  with pytest.raises(TraceError, match="two activations"):
    trace_ops(attention, jnp.zeros((1, 4, 8)))


def test_reshape_mean_resize_traces_as_the_average_pool_it_computes():
  """``models.layers.resize`` pools by reshape + mean (fast on XLA:CPU); the trace prices it
  as the f x f average pool it equals, in NHWC and NCHW."""
  from dnas_ee.models.layers import pool, resize
  x = jnp.zeros((1, 32, 32, 16))
  assert trace_ops(lambda x: resize(x, 8), x) == trace_ops(lambda x: pool(x, "avgpool", 4, 4), x)
  nchw = lambda x: x.reshape(1, 16, 8, 4, 8, 4).mean(axis=(3, 5))
  (sig,) = trace_ops(nchw, jnp.zeros((1, 16, 32, 32)))
  assert (sig.op, sig.h, sig.w, sig.cin, sig.kernel, sig.stride) == ("avgpool", 32, 32, 16, 4, 4)
