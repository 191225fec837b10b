"""Multi-core expected latency: zero-temperature equality with the simulated schedule,
the single-core limit, monotonicity in the allocation, gradients."""
from __future__ import annotations

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax.test_util import check_grads

import dnas_ee.cost.multicore as multicore
from dnas_ee.cost import exit_probabilities, expected_cost_per_sample
from dnas_ee.cost.multicore import (
    discrete_schedule_latency, multicore_latency_per_sample, multicore_transfer_energy)
from dnas_ee.cost.tables import CostTables

_latency = jax.jit(multicore_latency_per_sample, static_argnames="positions")
_single = jax.jit(expected_cost_per_sample, static_argnames="positions")


@st.composite
def networks(draw, hard=True):
  """Random backbone, exits, latencies and (hard or soft) gates/allocations/exit decisions."""
  n = draw(st.integers(2, 6))
  positions = tuple(sorted(draw(st.sets(st.integers(1, n - 1), min_size=1, max_size=n - 1))))
  p, b = len(positions), 4   # a fixed batch: fewer shapes to compile
  seconds = st.floats(0.0, 10.0, allow_nan=False, width=32)
  unit = st.sampled_from([0.0, 1.0]) if hard else st.floats(0.0, 1.0, width=32)
  arr = lambda strat, size: np.array(draw(st.lists(strat, min_size=size, max_size=size)),
                                     np.float32)
  return dict(block=arr(seconds, n), branch=arr(seconds, p), transfer=arr(seconds, p),
              gates=arr(unit, p), parallel=arr(unit, p),
              soft=arr(unit, b * p).reshape(b, p), positions=positions)


def _relaxed(net, parallel=None):
  _, leave = exit_probabilities(jnp.asarray(net["gates"]), jnp.asarray(net["soft"]))
  q = net["parallel"] if parallel is None else parallel
  return np.asarray(_latency(net["block"], net["branch"], net["transfer"], net["gates"], q, leave,
                             positions=net["positions"]))


@settings(max_examples=50, deadline=None)
@given(net=networks(hard=True))
def test_zero_temperature_equals_simulated_schedule(net):
  kept = [i for i, g in enumerate(net["gates"]) if g == 1.0]
  expected = []
  for soft in net["soft"]:
    fired = [e for e, i in enumerate(kept) if soft[i] == 1.0]
    expected.append(discrete_schedule_latency(
        net["block"], net["branch"][kept], net["transfer"][kept],
        [net["positions"][i] for i in kept], net["parallel"][kept] == 1.0,
        fired[0] if fired else len(kept)))
  relaxed = _relaxed(net)
  np.testing.assert_allclose(relaxed, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(relaxed.mean(), np.mean(expected), rtol=1e-5, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(net=networks(hard=False))
def test_all_sequential_equals_single_core_cost(net):
  n, p = len(net["block"]), len(net["branch"])
  tables = CostTables(block=jnp.zeros((n, 1, 1)), branch_entry=jnp.zeros((p, 1, 1)),
                      slot=jnp.zeros((p, 1, 1, 1, 1, 1)), transition=jnp.zeros((p, 1, 1, 1, 1)),
                      classifier=jnp.zeros((p, 1, 1, 1)), init_state=jnp.zeros((p, 1)),
                      metrics=("latency_s",))
  single = _single(tables, jnp.asarray(net["block"])[:, None], jnp.asarray(net["branch"])[:, None],
                   jnp.asarray(net["gates"]), jnp.asarray(net["soft"]),
                   positions=net["positions"])[:, 0]
  np.testing.assert_allclose(_relaxed(net, parallel=np.zeros(p, np.float32)), np.asarray(single),
                             rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(net=networks(hard=False), which=st.integers(0, 100), more=st.floats(0.0, 1.0, width=32))
def test_parallel_never_increases_latency_without_transfer_time(net, which, more):
  net["transfer"] = np.zeros_like(net["transfer"])
  sequential = _relaxed(net, parallel=np.zeros_like(net["parallel"]))
  relaxed = _relaxed(net)
  assert np.all(relaxed <= sequential * (1 + 1e-6) + 1e-6)
  raised = net["parallel"].copy()                      # more parallel: never slower
  i = which % len(raised)
  raised[i] = max(raised[i], more)
  assert np.all(_relaxed(net, parallel=raised) <= relaxed * (1 + 1e-6) + 1e-6)


def test_gradients_are_finite_and_match_finite_differences():
  k = jax.random.split(jax.random.key(3), 7)
  n, positions, batch = 6, (1, 3, 4), 5
  p = len(positions)
  with jax.enable_x64(True):
    args = (jax.random.uniform(k[0], (n,), jnp.float64, 0.5, 2.0),
            jax.random.uniform(k[1], (p,), jnp.float64, 0.5, 3.0),
            jax.random.uniform(k[2], (p,), jnp.float64, 0.1, 1.0),
            jax.random.uniform(k[3], (p,), jnp.float64, 0.2, 0.8),
            jax.random.uniform(k[4], (p,), jnp.float64, 0.2, 0.8),
            jax.random.uniform(k[5], (batch, p), jnp.float64, 0.1, 0.9))

    @jax.jit
    def f(block, branch, transfer, gates, parallel, soft):
      _, leave = exit_probabilities(gates, soft)
      lat = multicore_latency_per_sample(block, branch, transfer, gates, parallel, leave, positions)
      energy = multicore_transfer_energy(2.0 * transfer, gates, parallel, leave)
      return jnp.mean(lat) + jnp.mean(energy)

    grads = jax.grad(f, argnums=tuple(range(6)))(*args)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    assert float(jnp.abs(grads[4]).sum()) > 0          # the allocation gets a gradient
    check_grads(f, args, order=1, modes=["rev"], eps=1e-6, atol=1e-6, rtol=1e-5)


def test_transfer_energy_counts_evaluated_parallel_branches():
  gates, parallel = jnp.array([1.0, 1.0]), jnp.array([1.0, 0.0])
  _, leave = exit_probabilities(gates, jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
  energy = multicore_transfer_energy(jnp.array([3.0, 5.0]), gates, parallel, leave)
  np.testing.assert_allclose(np.asarray(energy), [3.0, 3.0, 3.0])
  energy = multicore_transfer_energy(jnp.array([3.0, 5.0]), gates, jnp.ones(2), leave)
  np.testing.assert_allclose(np.asarray(energy), [3.0, 8.0, 8.0])


def test_schedule_with_few_cores_queues_parallel_branches():
  # Two parallel branches right after each other: with one helper core the second waits.
  args = ([1.0, 1.0, 1.0], [5.0, 5.0], [0.0, 0.0], [1, 2], [True, True])
  assert discrete_schedule_latency(*args, 1) == 7.0                    # 2 + 5
  assert discrete_schedule_latency(*args, 1, num_cores=2) == 11.0      # waits until 6
  assert discrete_schedule_latency(*args, 2) == 7.0                    # final: blocks done at 3
  with pytest.raises(ValueError, match="exit_index"):
    discrete_schedule_latency(*args, 3)


def test_transfer_tables_match_hw_transfer_cost():
  from dnas_ee.hw import load_accelerator, transfer_cost, transfer_tables
  from dnas_ee.space.backbones import build_backbone
  from dnas_ee.space.space import make_search_space
  backbone = build_backbone("resnet_cifar", (8, 8, 1), 10, stage_widths=(8, 16, 16),
                            blocks_per_stage=(1, 1, 1), stem_width=8)
  space = make_search_space(backbone, exit_positions=(1, 2), branch_ops=("conv3_s1_x1",),
                            branch_depth=1, branch_resolutions=(4,), bits=(2, 8))
  acc = load_accelerator("quad_core_edge_tpu_like")
  latency, energy = transfer_tables(space, acc)
  assert latency.shape == energy.shape == (2, 2)
  assert (latency[1, 1], energy[1, 1]) == transfer_cost(acc, 4 * 4 * 16 * 8 / 8)
  assert np.all(latency[:, 0] < latency[:, 1]) and np.all(energy[:, 0] < energy[:, 1])


def test_docstring_example():
  assert doctest.testmod(multicore).failed == 0
