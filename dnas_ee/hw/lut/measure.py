"""A LUT measured on the machine at hand: every op of a search space timed on a JAX device.

``measure_lut`` times each op the way the early-exit executor runs it on the
current JAX device (``jax.devices()[0]``): one jitted function per op, NHWC,
float32, SAME padding, the same arithmetic as ``dnas_ee.models.layers``:

- ``conv``/``dense``: the input is fake-quantized per tensor at ``a_bits``
  (``quantize_activations``), convolved (``lax.conv_general_dilated`` with the
  op's groups) with weights fake-quantized per output channel at ``w_bits``
  (``quantize_weights``, inside the timed function, as the executor does unless it
  bakes the weights in);
- ``maxpool``/``avgpool``: ``lax.reduce_window``; ``add``: two feature maps;
  ``gap``: the spatial mean.

Each op is compiled and run ``warmup`` times; then ``repeats`` timed calls
(``block_until_ready``) per op are made in ``rounds`` interleaved passes over all
ops, and the row's latency is the median of its calls. Interleaving matters on a
shared machine: a burst of load from another process then slows a little of
every op instead of all the calls of a few (measured here: timing each op's
calls back to back, under ``nice`` while other jobs ran, gave two ops of the same
shape 0.4 and 1.8 ms). Energy is not measured: rows hold ``energy_j = 0`` (a
measured LUT is for latency objectives), and ``cycles`` = latency x 1 GHz (a
nominal clock, so that cycles read as ns).
Rows have ``model = measured``; the LUT's accelerator is ``jax-<platform>``
(e.g. ``jax-cpu``), its description hash empty: a search targets it with
``--config.hw.accelerator=jax-cpu --config.hw.lut=<file>`` (``dnas_ee.hw.lut.cost_source``
accepts a measured LUT for an accelerator without a description).

On an emulated low-bit datapath (fake quantization in float32) the latency does
not fall with bits: that is what this machine does, not what an accelerator does.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Iterable

import numpy as np

from dnas_ee.hw.lut.format import DEVICE_PREFIX, MEASURED, Lut, save_lut, utc_now
from dnas_ee.hw.lut.space import required_signatures
from dnas_ee.hw.models.op_cost import OpCost
from dnas_ee.space.signature import OpSignature

NOMINAL_CLOCK_HZ = 1e9


def device_name() -> str:
  """The accelerator name of a LUT measured here: ``jax-<platform>`` (``jax-cpu``, ``jax-gpu``)."""
  import jax
  return f"{DEVICE_PREFIX}{jax.devices()[0].platform}"


def op_function(sig: OpSignature):
  """``(fn, args)``: a pure function computing ``sig`` and example arguments (batch 1, NHWC)."""
  import jax
  import jax.numpy as jnp
  from dnas_ee.quant.fake_quant import quantize_activations, quantize_weights

  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((1, sig.h, sig.w, sig.cin)), jnp.float32)
  k, s = sig.kernel, sig.stride
  if sig.op in ("conv", "dense"):
    w = jnp.asarray(rng.standard_normal((k, k, sig.cin // sig.groups, sig.cout)) * 0.1,
                    jnp.float32)

    def conv(x, w):
      xq = quantize_activations(x, jnp.float32(4.0), sig.a_bits, signed=True)
      wq = quantize_weights(w, sig.w_bits)
      return jax.lax.conv_general_dilated(xq, wq, (s, s), "SAME",
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                          feature_group_count=sig.groups)
    return conv, (x, w)
  if sig.op in ("maxpool", "avgpool"):
    window, strides = (1, k, k, 1), (1, s, s, 1)

    def pool(x):
      if sig.op == "maxpool":
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, strides, "SAME")
      return jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, "SAME") / (k * k)
    return pool, (x,)
  if sig.op == "add":
    return (lambda a, b: a + b), (x, x + 1.0)
  if sig.op == "gap":
    return (lambda x: jnp.mean(x, axis=(1, 2))), (x,)
  raise ValueError(f"no measurement for op type {sig.op!r}")


def _compiled(sig: OpSignature, warmup: int):
  """A zero-argument call of ``sig``'s jitted function, compiled and warmed up."""
  import jax
  fn, args = op_function(sig)
  jitted = jax.jit(fn)
  call = lambda: jax.block_until_ready(jitted(*args))
  for _ in range(max(warmup, 1)):   # the first call compiles
    call()
  return call


def _timed(call, n: int) -> list[float]:
  times = []
  for _ in range(n):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  return times


def time_op(sig: OpSignature, *, repeats: int = 20, warmup: int = 3) -> float:
  """Median seconds of one jitted call of ``sig`` on the default JAX device (calls back to back)."""
  return statistics.median(_timed(_compiled(sig, warmup), repeats))


def measure_lut(signatures: Iterable[OpSignature], *, repeats: int = 20, warmup: int = 3,
                rounds: int = 5, batch_size: int = 1, progress: bool = True,
                space_signature: str = "") -> Lut:
  """Times every unique op on the current JAX device into a measured LUT.

  Args:
    signatures: the ops (duplicates timed once).
    repeats: timed calls per op; the row holds their median.
    warmup: untimed calls first (the first one compiles).
    rounds: passes over all ops the timed calls are spread over (``ceil(repeats /
      rounds)`` calls per op and pass), so that load from other processes spreads
      over every op.
    batch_size: must be 1 (per-inference latency, as the other LUTs); kept as an
      argument so that the CLI can refuse other values with a clear message.
    progress: a tqdm bar on stderr.
    space_signature: stored in the LUT.

  Returns:
    A ``Lut`` (accelerator ``jax-<platform>``, model ``measured``, empty description hash).
  """
  if batch_size != 1:
    raise ValueError(f"batch_size={batch_size}: LUT rows are per inference (batch 1); measure "
                     "with --batch-size 1")
  if repeats < 1 or rounds < 1:
    raise ValueError(f"repeats={repeats}, rounds={rounds}: time each op at least once, in at "
                     "least one round")
  from tqdm.auto import tqdm
  keys = sorted({s.key() for s in signatures})
  rounds = min(rounds, repeats)
  per_round = -(-repeats // rounds)
  bar = tqdm(total=len(keys) * (rounds + 1), desc=f"measuring on {device_name()}", unit="op",
             disable=not progress, file=sys.stderr)
  calls = {}
  for key in keys:
    calls[key] = _compiled(OpSignature.from_key(key), warmup)
    bar.update()
  times = {key: [] for key in keys}
  for _ in range(rounds):
    for key in keys:
      times[key] += _timed(calls[key], per_round)
      bar.update()
  bar.close()
  rows = {}
  for key in keys:
    sig, latency = OpSignature.from_key(key), statistics.median(times[key])
    rows[key] = OpCost(macs=sig.macs, cycles=latency * NOMINAL_CLOCK_HZ, latency_s=latency,
                       energy_j=0.0, model=MEASURED)
  return Lut(accelerator=device_name(), accelerator_hash="", model_name=MEASURED,
             model_version="1", space_signature=space_signature, created=utc_now(), rows=rows)


def measure_space_lut(space, output: str | os.PathLike, **kwargs) -> Lut:
  """``measure_lut`` of every op ``space`` needs (``required_signatures``), saved to ``output``."""
  lut = measure_lut(required_signatures(space), space_signature=space.identity_key(), **kwargs)
  return save_lut(lut, output)


__all__ = ["NOMINAL_CLOCK_HZ", "device_name", "measure_lut", "measure_space_lut",
           "op_function", "time_op"]
