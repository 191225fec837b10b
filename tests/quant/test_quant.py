"""Fake quantization: hand-computed values, analytic straight-through gradients, mixtures."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnas_ee.quant import (
    SampledWidth, check_bits, mix_quantized_activations, mix_quantized_weights, quantize_activations,
    quantize_weights)


def test_weights_hand_computed_per_channel():
  # channel 0: max 0.7 at 4 bits -> step 0.1; channel 1: max 2.0 at 4 bits -> step 2/7
  w = jnp.array([[0.7, 2.0], [-0.33, 0.5], [0.12, -1.2], [-0.04, 0.0]])
  q = np.asarray(quantize_weights(w, 4))
  np.testing.assert_allclose(q[:, 0], [0.7, -0.3, 0.1, 0.0], atol=1e-6)
  step = 2.0 / 7
  np.testing.assert_allclose(q[:, 1], [7 * step, 2 * step, -4 * step, 0.0], atol=1e-6)


def test_weights_two_bits_are_ternary():
  w = jnp.array([[1.0], [0.6], [-0.4], [-0.9]])
  np.testing.assert_allclose(np.asarray(quantize_weights(w, 2))[:, 0], [1.0, 1.0, 0.0, -1.0])


def test_activations_hand_computed():
  x = jnp.array([-1.0, 0.4, 1.6, 2.2, 5.0])
  q = quantize_activations(x, jnp.array(3.0), 2, signed=False)   # step 1
  np.testing.assert_allclose(np.asarray(q), [0, 0, 2, 2, 3], atol=1e-5)
  x = jnp.array([-5.0, -1.4, 0.6, 2.7])
  q = quantize_activations(x, jnp.array(3.0), 3, signed=True)    # levels +-3, step 1
  np.testing.assert_allclose(np.asarray(q), [-3, -1, 1, 3], atol=1e-5)


def test_weight_ste_gradient_is_identity():
  w = jax.random.normal(jax.random.key(0), (3, 3, 4, 5))
  v = jax.random.normal(jax.random.key(1), w.shape)
  for bits in (2, 4, 8):
    g = jax.grad(lambda w: jnp.sum(quantize_weights(w, bits) * v))(w)
    np.testing.assert_allclose(np.asarray(g), np.asarray(v), rtol=1e-6)


@pytest.mark.parametrize("signed", [False, True])
def test_activation_ste_gradients_analytic(signed):
  bits, clip = 3, 2.0
  x = jnp.array([-3.0, -1.1, -0.2, 0.3, 0.9, 1.7, 2.5])
  v = jnp.arange(1.0, 8.0)
  gx, gc = jax.grad(lambda x, c: jnp.sum(quantize_activations(x, c, bits, signed=signed) * v),
                    argnums=(0, 1))(x, jnp.array(clip))
  c = clip + 1e-6
  lo = -c if signed else 0.0
  levels = 2**(bits - 1) - 1 if signed else 2**bits - 1
  step = c / levels
  inside = (np.asarray(x) > lo) & (np.asarray(x) < c)
  np.testing.assert_allclose(np.asarray(gx), np.where(inside, v, 0.0), rtol=1e-6)
  # d/dclip: rounding residual / levels inside; +1 above the clip; -1 below -clip (signed)
  xs = np.asarray(x)
  residual = (np.round(xs / step) - xs / step) / levels
  expected = np.where(inside, residual, np.where(xs >= c, 1.0, -1.0 if signed else 0.0))
  np.testing.assert_allclose(float(gc), float(np.sum(expected * np.asarray(v))), rtol=1e-4,
                             atol=1e-4)


def test_mixing_before_conv_equals_mixture_of_convs():
  """Bilinearity: conv(sum p_a Q_a x, sum p_w Q_w W) = sum_a sum_w p_a p_w conv(Q_a x, Q_w W)."""
  kx, kw = jax.random.split(jax.random.key(3))
  x = jax.nn.relu(jax.random.normal(kx, (2, 6, 6, 4)))
  w = jax.random.normal(kw, (3, 3, 4, 5))
  bits, probs, clip = (2, 4, 8), jnp.array([0.2, 0.3, 0.5]), jnp.array(2.5)
  conv = lambda a, b: jax.lax.conv_general_dilated(a, b, (1, 1), "SAME",
                                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  mixed = conv(mix_quantized_activations(x, clip, bits, probs, signed=False),
               mix_quantized_weights(w, bits, probs))
  reference = sum(probs[i] * probs[j] * conv(quantize_activations(x, clip, a, signed=False),
                                             quantize_weights(w, b))
                  for (i, a), (j, b) in itertools.product(enumerate(bits), enumerate(bits)))
  np.testing.assert_allclose(np.asarray(mixed), np.asarray(reference), rtol=1e-5, atol=1e-5)


def test_one_hot_mixture_is_the_single_width():
  w = jax.random.normal(jax.random.key(4), (3, 3, 2, 2))
  q = mix_quantized_weights(w, (2, 4, 8), jnp.array([0.0, 1.0, 0.0]))
  np.testing.assert_array_equal(np.asarray(q), np.asarray(quantize_weights(w, 4)))


@pytest.mark.parametrize("bad", [(0,), (33,), (1,), (4.5,), (), (4, 4), (True,)])
def test_impossible_bit_widths_are_rejected(bad):
  with pytest.raises(ValueError, match="bit width|empty"):
    check_bits(bad, "space.bits")


def test_bit_width_error_names_the_range():
  with pytest.raises(ValueError, match=r"impossible bit width 33 in space.bits.*\[2, 32\]"):
    check_bits((4, 33), "space.bits")


def test_low_widths_are_not_zeroed_at_initialization():
  """Each width clips at its own ACIQ-scaled clip: at 2 bits a shared 6.0 clip zeroed 84% of
  N(0,1) activations (95% of the positive half of the unsigned quantizer's input)."""
  from dnas_ee.models.layers import ActQuant, clip_ratios
  x = jnp.asarray(np.random.default_rng(0).normal(size=(20000,)), jnp.float32)
  for signed, shared in ((False, 6.0), (True, 4.0)):
    quant = ActQuant(signed=signed)
    two_bit = jnp.asarray([1.0, 0.0, 0.0])          # one-hot at 2 bits of (2, 4, 8)
    zeroed = float(jnp.mean(quant(x, (2, 4, 8), two_bit) == 0))
    old = float(jnp.mean(mix_quantized_activations(x, shared, (2, 4, 8), two_bit,
                                                   signed=signed) == 0))
    assert zeroed < old - 0.1, (signed, zeroed, old)
  # The 8-bit clip is the learned parameter itself; lower widths clip lower.
  ratios = clip_ratios((2, 4, 8))
  assert ratios[-1] == 1.0 and ratios[0] < ratios[1] < ratios[2]


@pytest.mark.parametrize("signed", [False, True])
def test_sampled_width_equals_the_mixture_at_its_one_hot(signed):
  """A SampledWidth computes one quantized copy, with the value and every gradient (input,
  each width's clip, each width's mixture weight) of the mixture at the same one-hot."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 3, 4)), jnp.float32)
  w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3, 4, 5)), jnp.float32)
  bits, clips = (2, 4, 8), jnp.asarray([0.9, 2.0, 3.5])
  one_hot = jnp.asarray([0.0, 1.0, 0.0])
  target = jnp.asarray(np.random.default_rng(2).normal(size=(2, 3, 3, 4)), jnp.float32)
  np.testing.assert_allclose(
      mix_quantized_activations(x, clips, bits, SampledWidth(one_hot), signed=signed),
      quantize_activations(x, clips[1], 4, signed=signed), rtol=1e-6)
  np.testing.assert_allclose(mix_quantized_weights(w, bits, SampledWidth(one_hot)),
                             quantize_weights(w, 4), rtol=1e-6)

  def loss(wrap, x, clips, h):
    return jnp.sum((mix_quantized_activations(x, clips, bits, wrap(h), signed=signed)
                    - target) ** 2)
  sampled = jax.grad(loss, (1, 2, 3))(SampledWidth, x, clips, one_hot)
  mixed = jax.grad(loss, (1, 2, 3))(lambda h: h, x, clips, one_hot)
  for a, b in zip(sampled, mixed):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  assert np.all(np.asarray(sampled[2]) != 0.0)   # every width's weight is priced by the task
  w_loss = lambda wrap, w, h: jnp.sum(mix_quantized_weights(w, bits, wrap(h)) ** 3)
  for a, b in zip(jax.grad(w_loss, (1, 2))(SampledWidth, w, one_hot),
                  jax.grad(w_loss, (1, 2))(lambda h: h, w, one_hot)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
