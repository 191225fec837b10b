"""Micro-benchmarks behind the sampled mode's convolution and bit-mixture forms, each ratio
from one process (docs/benchmarks.md).

Run:  python experiments/benchmarks/switch_kernels.py [--out FILE]

1. A 3x3 convolution (64 x 8 x 8 x 32) and its gradients at the program's top level and
   inside a 4-way ``lax.switch``, with lax's own gradient and with
   ``dnas_ee.models.conv.conv2d`` (gradients written as canonical forward convolutions).
2. The same convolution's gradient inside a 2-iteration ``fori_loop``.
3. A 3-width activation bit mixture (64 x 32 x 32 x 16) forward + backward: a
   ``tensordot`` over a stacked copy against the fused sum ``mix_quantized_activations``
   computes, and one width alone.
Milliseconds per call, best of 3 rounds of 20 calls, wall time.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from dnas_ee.models.conv import conv2d  # noqa: E402
from dnas_ee.quant import mix_quantized_activations, quantize_activations, ste_round  # noqa: E402


def ms(fn, *args, iters=20, rounds=3):
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(rounds):
    t0 = time.perf_counter()
    for _ in range(iters):
      out = fn(*args)
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - t0) / iters)
  return 1e3 * best


def lax_conv(x, w):
  return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv_figures():
  x = jax.random.normal(jax.random.key(0), (64, 8, 8, 32))
  ws = [0.05 * jax.random.normal(jax.random.key(k), (3, 3, 32, 32)) for k in range(4)]
  out = {}
  for name, conv in (("lax", lax_conv), ("conv2d", lambda x, w: conv2d(x, w, 1, 1))):
    top = lambda ws, x: jnp.sum(jax.nn.relu(conv(x, ws[1])) ** 2)
    switched = lambda ws, x, i: jnp.sum(jax.lax.switch(
        i, [lambda ws, x, k=k: jax.nn.relu(conv(x, ws[k])) for k in range(4)], ws, x) ** 2)
    looped = lambda ws, x: jax.lax.fori_loop(
        0, 2, lambda i, acc: acc + jax.grad(top)([w * (1 + 0.1 * i) for w in ws], x)[1],
        jnp.zeros_like(ws[1]))
    unrolled = lambda ws, x: sum(jax.grad(top)([w * (1 + 0.1 * i) for w in ws], x)[1]
                                 for i in range(2))
    out[name] = dict(
        input_grad_top_ms=ms(jax.jit(jax.grad(top, 1)), ws, x),
        input_grad_switch_ms=ms(jax.jit(jax.grad(lambda ws, x, i: switched(
            jax.lax.stop_gradient(ws), x, i), 1)), ws, x, 1),
        filter_grad_top_ms=ms(jax.jit(jax.grad(top, 0)), ws, x),
        filter_grad_switch_ms=ms(jax.jit(jax.grad(switched, 0)), ws, x, 1),
        both_grads_top_ms=ms(jax.jit(jax.grad(top, (0, 1))), ws, x),
        both_grads_switch_ms=ms(jax.jit(jax.grad(switched, (0, 1))), ws, x, 1),
        filter_grad_2x_unrolled_ms=ms(jax.jit(unrolled), ws, x),
        filter_grad_2x_fori_loop_ms=ms(jax.jit(looped), ws, x))
  return out


def mixture_figures():
  x = jax.random.normal(jax.random.key(0), (64, 32, 32, 16))
  clips, probs, bits = jnp.asarray([1.0, 2.0, 3.0]), jnp.asarray([0.2, 0.3, 0.5]), (2, 4, 8)

  def stacked(x, clip, probs):   # the implementation before this change
    levels = jnp.asarray([2.0**b - 1 for b in bits]).reshape(-1, 1, 1, 1, 1)
    clip = jnp.abs(clip).reshape(-1, 1, 1, 1, 1) + 1e-6
    step = clip / levels
    return jnp.tensordot(probs, ste_round(jnp.clip(x[None], 0.0, clip) / step) * step, axes=1)

  fused = lambda x, c, p: mix_quantized_activations(x, c, bits, p, signed=False)
  grad = lambda f: jax.jit(jax.grad(lambda x, c, p: jnp.sum(jnp.sin(f(x, c, p))), (0, 1, 2)))
  one = jax.jit(jax.grad(lambda x, c: jnp.sum(jnp.sin(quantize_activations(x, c, 8, signed=False))),
                         (0, 1)))
  return dict(tensordot_ms=ms(grad(stacked), x, clips, probs),
              fused_sum_ms=ms(grad(fused), x, clips, probs), one_width_ms=ms(one, x, clips[0]))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  results = dict(device=jax.devices()[0].device_kind, jax=jax.__version__,
                 command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                 convolution=conv_figures(), bit_mixture=mixture_figures())
  print(json.dumps(results, indent=2))
  if args.out:
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
  main()
