"""conv2d's hand-written gradients equal lax.conv_general_dilated's, and stay canonical
inside a lax.switch branch (where XLA:CPU would otherwise run them on a slow path);
conv2d_windows gives the same numbers with no convolution in a slow form anywhere."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnas_ee.models.conv import check_groups, conv2d, conv2d_windows

_CASES = [  # (size, cin, cout, kernel, stride, groups)
    (8, 4, 6, 3, 1, 1), (8, 4, 6, 3, 2, 1), (7, 4, 6, 3, 2, 1), (8, 4, 6, 5, 2, 1),
    (9, 3, 5, 5, 2, 1), (8, 4, 6, 1, 2, 1), (5, 3, 2, 1, 1, 1), (2, 3, 4, 5, 2, 1),
    (8, 4, 4, 3, 1, 4), (8, 4, 4, 3, 2, 4), (7, 4, 4, 5, 2, 4), (4, 4, 4, 5, 1, 4), (3, 2, 2, 5, 2, 2),
]


def _reference(x, w, stride, groups):
  return jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      feature_group_count=groups)


@pytest.mark.parametrize("conv", [conv2d, conv2d_windows], ids=["conv2d", "windows"])
@pytest.mark.parametrize("size,cin,cout,kernel,stride,groups", _CASES)
def test_value_and_gradients_match_lax(size, cin, cout, kernel, stride, groups, conv):
  k1, k2, k3 = jax.random.split(jax.random.key(size * 100 + kernel * 10 + stride), 3)
  x = jax.random.normal(k1, (2, size, size, cin))
  w = jax.random.normal(k2, (kernel, kernel, cin // groups, cout))
  y, vjp = jax.vjp(lambda x, w: conv(x, w, stride, groups), x, w)
  y_ref, vjp_ref = jax.vjp(lambda x, w: _reference(x, w, stride, groups), x, w)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  g = jax.random.normal(k3, y.shape)
  for got, want in zip(vjp(g), vjp_ref(g)):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_gradient_against_finite_differences():
  x = jax.random.normal(jax.random.key(0), (1, 5, 5, 2), jnp.float64) if jax.config.x64_enabled \
      else jax.random.normal(jax.random.key(0), (1, 5, 5, 2))
  w = jax.random.normal(jax.random.key(1), (3, 3, 2, 3), x.dtype)
  from jax.test_util import check_grads
  check_grads(lambda x, w: jnp.sum(jnp.tanh(conv2d(x, w, 2, 1))), (x, w), order=1, modes=["rev"],
              atol=5e-2, rtol=5e-2)


def test_backward_convolutions_are_canonical_inside_a_switch():
  """Every convolution of the switched gradient is NHWC x HWIO -> NHWC after XLA's passes."""
  x, w = jnp.ones((4, 8, 8, 3)), jnp.ones((3, 3, 3, 5))
  branches = [lambda x, w: conv2d(x, w, 1, 1), lambda x, w: conv2d(x, w, 2, 1)]
  f = lambda x, w, i: jnp.sum(jax.lax.switch(i, [lambda x, w: jnp.sum(b(x, w) ** 2)
                                                 for b in branches], x, w))
  hlo = jax.jit(jax.grad(f, (0, 1))).lower(x, w, 0).compile().as_text()
  labels = [line.split("dim_labels=")[1].split(",")[0] for line in hlo.splitlines()
            if " convolution(" in line]
  assert labels and all(label == "b01f_01io->b01f" for label in labels), labels


@pytest.mark.parametrize("switched", [False, True], ids=["top_level", "in_switch"])
def test_windows_leave_no_slow_convolution(switched):
  """The gradients of a strided dense and a depthwise conv2d_windows compile to canonical
  convolutions only (no feature groups, dilation or reversal), wherever they sit."""
  x, w, wd = jnp.ones((4, 8, 8, 3)), jnp.ones((3, 3, 3, 5)), jnp.ones((5, 5, 1, 3))
  parts = [lambda x, w, wd: conv2d_windows(x, w, 2, 1), lambda x, w, wd: conv2d_windows(x, wd, 2, 3)]
  if switched:
    f = lambda x, w, wd, i: jax.lax.switch(i, [lambda *a, p=p: jnp.sum(jnp.sin(p(*a)))
                                               for p in parts], x, w, wd)
  else:
    f = lambda x, w, wd, i: sum(jnp.sum(jnp.sin(p(x, w, wd))) for p in parts)
  hlo = jax.jit(jax.grad(f, (0, 1, 2))).lower(x, w, wd, 0).compile().as_text()
  convs = [line for line in hlo.splitlines() if " convolution(" in line]
  for slow in ("feature_group_count", "lhs_dilate", "rhs_dilate", "rhs_reversal"):
    assert not [c for c in convs if slow in c], slow


def test_unsupported_groups_are_named():
  with pytest.raises(ValueError, match="depthwise groups == cin == cout"):
    check_groups(8, 16, 8)
