"""Profile of the plain (static backbone, QAT) training step: where a ResNet-20 step goes.

Run:  python experiments/benchmarks/train_step_profile.py [--batch 64] [--iters 5] [--out FILE]

In one process, on synthetic CIFAR-shaped inputs, it times jitted sub-programs
of the retraining step of the static ResNet-20 (8-bit weights and activations):

- ``step``: the whole training step (augmentation, forward, backward, SGD update);
- ``forward`` / ``forward_backward``: the loss, and the loss with its gradient;
- ``conv_forward`` / ``conv_input_grad`` / ``conv_filter_grad``: every convolution
  of the network (read from the step's jaxpr, each shape timed alone in its own
  jitted program and multiplied by its count);
- ``batch_norm`` and ``fake_quant``: the step minus the same step with BatchNorm
  (resp. fake quantization) replaced by the identity;
- ``data``: drawing a batch on the host and placing it, plus the jitted augmentation.

It also times the same convolutions in NCHW (a layout check), the filter
gradient as an im2col matmul (``conv_general_dilated_patches`` + ``dot``, the
custom-VJP candidate), and the whole step at a second batch size.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import json
import os
import platform
import sys
import time
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from flax import nnx  # noqa: E402

from dnas_ee.config import apply_overrides, load_config_file  # noqa: E402
from dnas_ee.data.augment import augment_batch  # noqa: E402
from dnas_ee.models import layers  # noqa: E402
from dnas_ee.space.backbones import build_backbone  # noqa: E402
from dnas_ee.space.genotype import Genotype, genotype_space  # noqa: E402
from dnas_ee.stages.run_dir import train_setup  # noqa: E402
from dnas_ee.train import loop  # noqa: E402
from dnas_ee.train import retrain as rt  # noqa: E402
from dnas_ee.train.parallel import make_mesh  # noqa: E402


# Wall time (perf_counter) or the process's CPU time over all its threads (process_time):
# on a machine shared with other jobs the CPU time is the steadier measure of the work done.
CLOCK = time.process_time


def seconds_per_call(fn, *args, iters: int, repeat: int = 3) -> float:
  """Best-of-``repeat`` mean time of ``iters`` calls after one warm-up (compiles)."""
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeat):
    t0 = CLOCK()
    for _ in range(iters):
      out = fn(*args)
    jax.block_until_ready(out)
    best = min(best, (CLOCK() - t0) / iters)
  return best


def static_resnet(config):
  """The static backbone's training setup and state (8-bit, no exits), as the retraining builds it."""
  spec = build_backbone(config.backbone.name, (32, 32, 3), 10, **config.backbone.options.to_dict())
  bits = max(config.space.bits)
  genotype = Genotype(spec, (), (bits,) * len(spec.blocks), config.space.edge_bits)
  return train_setup(config, genotype_space(genotype), config.seed)


def compiled_step(config, images, labels):
  """(jitted training step, a live state), compiled now: a patch active now is baked in."""
  setup, state = static_resnet(config)
  step = rt.jit_train_step(setup)
  state, out = step(state, (images, labels))
  jax.block_until_ready(out)
  return step, state


def interleaved(variants: dict, iters: int, rounds: int) -> dict:
  """Seconds per step of each training-step variant, timed in turns; the best round of each.

  Taking turns (A, B, C, A, B, C, ...) and the minimum keeps a load change on a
  shared machine from landing on one variant only.
  """
  best = {k: float("inf") for k in variants}
  for _ in range(rounds):
    for name, (step, state, batch) in variants.items():
      t0 = CLOCK()
      for _ in range(iters):
        state, out = step(state, batch)
      jax.block_until_ready((state, out))
      variants[name] = (step, state, batch)
      best[name] = min(best[name], (CLOCK() - t0) / iters)
  return best


def step_seconds(config, images, labels, iters: int) -> float:
  """Seconds per training step (state donated, as in the retraining)."""
  step, state = compiled_step(config, images, labels)
  return interleaved({"step": (step, state, (images, labels))}, iters, 2)["step"]


def static_resnet_images_per_s(batch: int, iters: int) -> float:
  """Images/s of the shipped ResNet-20's static training step at ``batch`` (synthetic data)."""
  config = load_config_file(ROOT / "experiments/configs/cifar10_resnet20.py")
  rng = np.random.default_rng(0)
  images, labels = loop.host_batch(
      make_mesh(False), rng.standard_normal((2 * batch, 32, 32, 3)).astype(np.float32),
      rng.integers(0, 10, 2 * batch).astype(np.int32), 0, 0, batch)
  return batch / step_seconds(config, images, labels, iters)


def torch_comparison(python: str, batch: int, iters: int) -> dict | None:
  """The PyTorch ResNet-20 step (torch_resnet20.py, run by ``python``) against this one.

  The JAX step is timed just before and just after the torch process (the better
  of the two is kept), so a load change on a shared machine hits both alike.
  Returns None when ``python`` cannot import torch.
  """
  import subprocess
  if subprocess.run([python, "-c", "import torch"], capture_output=True).returncode:
    print(f"torch is not importable by {python}: no PyTorch comparison", flush=True)
    return None
  before = static_resnet_images_per_s(batch, iters)
  clock = "cpu" if CLOCK is time.process_time else "wall"
  out = subprocess.run([python, str(Path(__file__).with_name("torch_resnet20.py")), "--batch",
                        str(batch), "--iters", str(iters), "--clock", clock],
                       capture_output=True, text=True, check=True)
  r = json.loads(out.stdout.strip().splitlines()[-1])
  after = static_resnet_images_per_s(batch, iters)
  r.update(jax_plain_images_per_s=max(before, after), jax_before_after=[before, after])
  for mode in ("eager", "compile"):
    if f"{mode}_images_per_s" in r:
      r[f"jax_over_torch_{mode}"] = r["jax_plain_images_per_s"] / r[f"{mode}_images_per_s"]
  return r


def loss_fn(setup, state, images, labels, params):
  logits, _ = rt.forward(setup.graphdef, params, setup.arch, state.stats, images, train=True)
  return optax.softmax_cross_entropy_with_integer_labels(logits[-1], labels).mean()


@contextlib.contextmanager
def patched(obj, name, value):
  old = getattr(obj, name)
  setattr(obj, name, value)
  try:
    yield
  finally:
    setattr(obj, name, old)


def no_quant():
  """Fake quantization replaced by the identity (weights and activations)."""
  stack = contextlib.ExitStack()
  stack.enter_context(patched(layers, "mix_quantized_weights", lambda w, bits, probs: w))
  stack.enter_context(patched(layers, "mix_quantized_activations",
                              lambda x, clip, bits, probs, signed: x))
  return stack


def no_batch_norm():
  return patched(nnx.BatchNorm, "__call__", lambda self, x, use_running_average=None: x)


def conv_equations(jaxpr) -> list:
  """Every conv_general_dilated equation of a (nested) jaxpr."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "conv_general_dilated":
      found.append(eqn)
    for value in eqn.params.values():
      for sub in (value if isinstance(value, (list, tuple)) else [value]):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          found.extend(conv_equations(inner))
  return found


def conv_key(eqn):
  p = eqn.params
  return (tuple(eqn.invars[0].aval.shape), tuple(eqn.invars[1].aval.shape), tuple(p["window_strides"]),
          tuple(map(tuple, p["padding"])), p["feature_group_count"])


def conv_fn(strides, padding, groups, layout):
  dn = ("NHWC", "HWIO", "NHWC") if layout == "NHWC" else ("NCHW", "OIHW", "NCHW")
  return lambda x, w: jax.lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=dn,
                                                   feature_group_count=groups)


def filter_grad_by_patches(x, dy, kernel_shape, strides, padding):
  """dL/dW of an NHWC/HWIO convolution as one matmul of im2col patches with dy."""
  kh, kw, cin, cout = kernel_shape
  patches = jax.lax.conv_general_dilated_patches(
      x, (kh, kw), strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
  # patches' feature axis is ordered (cin, kh, kw).
  g = jnp.einsum("nhwp,nhwo->po", patches, dy)
  return g.reshape(cin, kh, kw, cout).transpose(1, 2, 0, 3)


def time_convs(eqns, iters: int, im2col: bool = False) -> dict:
  """Forward, input-gradient and filter-gradient time of every convolution, in two layouts."""
  counts = collections.Counter(conv_key(e) for e in eqns)
  totals = collections.defaultdict(float)
  rows = []
  key = jax.random.key(0)
  for (xs, ws, strides, padding, groups), n in counts.items():
    x = jax.random.normal(key, xs)
    w = jax.random.normal(key, ws)
    f = conv_fn(strides, padding, groups, "NHWC")
    y, vjp = jax.vjp(f, x, w)
    dy = jnp.ones_like(y)
    fwd = jax.jit(f)
    dx = jax.jit(lambda x, w, dy: jax.vjp(lambda a: f(a, w), x)[1](dy)[0])
    dw = jax.jit(lambda x, w, dy: jax.vjp(lambda b: f(x, b), w)[1](dy)[0])
    row = dict(input=xs, kernel=ws, strides=strides, groups=groups, count=n)
    row["forward_ms"] = 1e3 * seconds_per_call(fwd, x, w, iters=iters)
    row["input_grad_ms"] = 1e3 * seconds_per_call(dx, x, w, dy, iters=iters)
    row["filter_grad_ms"] = 1e3 * seconds_per_call(dw, x, w, dy, iters=iters)
    if groups == 1 and im2col:
      patches = jax.jit(functools.partial(filter_grad_by_patches, kernel_shape=ws, strides=strides,
                                          padding=padding))
      np.testing.assert_allclose(patches(x, dy), dw(x, w, dy), rtol=2e-3, atol=2e-2 * float(
          jnp.abs(dw(x, w, dy)).max()))
      row["filter_grad_patches_ms"] = 1e3 * seconds_per_call(patches, x, dy, iters=iters)
    elif im2col:
      row["filter_grad_patches_ms"] = row["filter_grad_ms"]
    # The same convolution in NCHW / OIHW.
    fc = conv_fn(strides, padding, groups, "NCHW")
    xc, wc = jnp.transpose(x, (0, 3, 1, 2)), jnp.transpose(w, (3, 2, 0, 1))
    dyc = jnp.transpose(dy, (0, 3, 1, 2))
    row["nchw_forward_ms"] = 1e3 * seconds_per_call(jax.jit(fc), xc, wc, iters=iters)
    row["nchw_input_grad_ms"] = 1e3 * seconds_per_call(
        jax.jit(lambda x, w, dy: jax.vjp(lambda a: fc(a, w), x)[1](dy)[0]), xc, wc, dyc, iters=iters)
    row["nchw_filter_grad_ms"] = 1e3 * seconds_per_call(
        jax.jit(lambda x, w, dy: jax.vjp(lambda b: fc(x, b), w)[1](dy)[0]), xc, wc, dyc, iters=iters)
    for k in list(row):
      if k.endswith("_ms"):
        totals[k] += n * row[k]
    rows.append(row)
  return dict(totals=dict(totals), shapes=rows)


def profile(config, batch: int, iters: int, im2col: bool = False) -> dict:
  rng = np.random.default_rng(0)
  n = 8 * batch
  data = types.SimpleNamespace(images=rng.standard_normal((n, 32, 32, 3)).astype(np.float32),
                               labels=rng.integers(0, 10, n).astype(np.int32))
  mesh = make_mesh(False)
  images, labels = loop.host_batch(mesh, data.images, data.labels, 0, 0, batch)
  variants = {"step": compiled_step(config, images, labels)}
  with no_quant():
    variants["step_float"] = compiled_step(config, images, labels)
  with no_batch_norm():
    variants["step_no_batch_norm"] = compiled_step(config, images, labels)
  variants = {k: (f, st, (images, labels)) for k, (f, st) in variants.items()}
  out = {f"{k}_ms": 1e3 * v for k, v in interleaved(variants, iters, rounds=3).items()}
  setup, state = static_resnet(config)
  loss = functools.partial(loss_fn, setup, state, images, labels)
  out["forward_ms"] = 1e3 * seconds_per_call(jax.jit(loss), state.params, iters=iters)
  out["forward_backward_ms"] = 1e3 * seconds_per_call(jax.jit(jax.value_and_grad(loss)),
                                                      state.params, iters=iters)
  eqns = conv_equations(jax.make_jaxpr(loss)(state.params).jaxpr)
  convs = time_convs(eqns, iters, im2col)
  out["convolutions"] = len(eqns)
  out["conv_shapes"] = convs["shapes"]
  t = convs["totals"]

  augment = jax.jit(functools.partial(augment_batch, pad=config.data.augment_pad,
                                      flip=config.data.augment_flip))
  host = lambda: loop.host_batch(mesh, data.images, data.labels, 0, 1, batch)
  out["data_ms"] = 1e3 * (seconds_per_call(host, iters=iters)
                          + seconds_per_call(augment, jax.random.key(1), images, iters=iters))
  out["breakdown_ms"] = dict(
      conv_forward=t["forward_ms"], conv_input_grad=t["input_grad_ms"],
      conv_filter_grad=t["filter_grad_ms"],
      batch_norm=out["step_ms"] - out["step_no_batch_norm_ms"],
      fake_quant=out["step_ms"] - out["step_float_ms"],
      data=out["data_ms"])
  out["breakdown_ms"]["rest"] = out["step_ms"] - sum(out["breakdown_ms"].values())
  out["nchw_conv_ms"] = t["nchw_forward_ms"] + t["nchw_input_grad_ms"] + t["nchw_filter_grad_ms"]
  out["nhwc_conv_ms"] = t["forward_ms"] + t["input_grad_ms"] + t["filter_grad_ms"]
  if im2col:
    out["filter_grad_patches_ms"] = t["filter_grad_patches_ms"]
  out["images_per_s"] = batch / (out["step_ms"] / 1e3)
  return out


def xla_flag_variants(flag_sets, batch: int, iters: int, rounds: int = 2) -> dict:
  """Whole-step ms under each XLA_FLAGS string, each in its own process, taking turns.

  The processes share a fresh persistent compilation cache (XLA flags are part of
  its key), so only the first round of each variant compiles.
  """
  import subprocess
  import tempfile
  cache = tempfile.mkdtemp(prefix="dnas_ee_flags_cache_")
  best = {f: float("inf") for f in flag_sets}
  for _ in range(rounds):
    for flags in flag_sets:
      env = dict(os.environ, XLA_FLAGS=flags, DNAS_EE_COMPILATION_CACHE=cache)
      clock = "cpu" if CLOCK is time.process_time else "wall"
      out = subprocess.run([sys.executable, __file__, "--step-only", "--batch", str(batch),
                            "--iters", str(iters), "--clock", clock], env=env,
                           capture_output=True, text=True)
      if out.returncode:
        best[flags] = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
        continue
      ms = json.loads(out.stdout.strip().splitlines()[-1])["step_ms"]
      if isinstance(best[flags], float):
        best[flags] = min(best[flags], ms)
  return best


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--config", default=str(ROOT / "experiments/configs/cifar10_resnet20.py"))
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--also-batch", type=int, default=128, help="whole step only; 0: skip")
  parser.add_argument("--iters", type=int, default=5)
  parser.add_argument("--im2col", action="store_true",
                      help="also time the filter gradient as an im2col matmul (slow on XLA:CPU)")
  parser.add_argument("--xla-flags", action="append", default=[],
                      help="an XLA_FLAGS string to compare with the default (repeatable)")
  parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                      help="cpu: the process's CPU time, all threads (steadier on a shared "
                           "machine); wall: elapsed time")
  parser.add_argument("--torch", action="store_true", help="add the PyTorch ResNet-20 step")
  parser.add_argument("--torch-python", default=os.environ.get("DNAS_EE_TORCH_PYTHON", sys.executable),
                      help="a Python that can import torch (default: $DNAS_EE_TORCH_PYTHON or this one)")
  parser.add_argument("--step-only", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  global CLOCK
  CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
  config = load_config_file(args.config)
  apply_overrides(config, [f"--config.retrain.batch_size={args.batch}"])
  if args.step_only:   # a child of xla_flag_variants
    from dnas_ee.train.compile_cache import enable_compilation_cache
    enable_compilation_cache()
    rng = np.random.default_rng(0)
    images, labels = loop.host_batch(
        make_mesh(False), rng.standard_normal((2 * args.batch, 32, 32, 3)).astype(np.float32),
        rng.integers(0, 10, 2 * args.batch).astype(np.int32), 0, 0, args.batch)
    print(json.dumps(dict(step_ms=1e3 * step_seconds(config, images, labels, args.iters))))
    return
  result = dict(device=str(jax.devices()[0].device_kind), platform=jax.default_backend(),
                clock=args.clock, command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                jax=jax.__version__, host=platform.node(), batch_size=args.batch,
                config=Path(args.config).name)
  result.update(profile(config, args.batch, args.iters, args.im2col))
  if args.also_batch:
    rng = np.random.default_rng(1)
    mesh = make_mesh(False)
    images, labels = loop.host_batch(
        mesh, rng.standard_normal((2 * args.also_batch, 32, 32, 3)).astype(np.float32),
        rng.integers(0, 10, 2 * args.also_batch).astype(np.int32), 0, 0, args.also_batch)
    s = step_seconds(config, images, labels, max(2, args.iters // 2))
    result[f"images_per_s_batch{args.also_batch}"] = args.also_batch / s
  if args.torch:
    result["torch"] = torch_comparison(args.torch_python, args.batch, max(args.iters, 5))
  if args.xla_flags:
    result["xla_flags_step_ms"] = xla_flag_variants([""] + args.xla_flags, args.batch, args.iters)
  b = result["breakdown_ms"]
  print(f"ResNet-20 training step, batch {args.batch}: {result['step_ms']:.1f} ms "
        f"({result['images_per_s']:.0f} img/s)")
  for k, v in b.items():
    print(f"  {k:<18}{v:>9.1f} ms  {100 * v / result['step_ms']:>5.1f}%")
  print(f"  forward {result['forward_ms']:.1f} ms, forward+backward {result['forward_backward_ms']:.1f} ms")
  print(f"  convs NHWC {result['nhwc_conv_ms']:.1f} ms vs NCHW {result['nchw_conv_ms']:.1f} ms")
  if args.im2col:
    print(f"  filter grad as im2col matmul {result['filter_grad_patches_ms']:.1f} ms "
          f"(vs {b['conv_filter_grad']:.1f})")
  for flags, ms in result.get("xla_flags_step_ms", {}).items():
    print(f"  XLA_FLAGS={flags or '(default)'}: " + (f"{ms:.1f} ms" if isinstance(ms, float) else ms))
  t = result.get("torch")
  if t:
    print(f"  torch {t['torch']}: eager {t.get('eager_images_per_s', float('nan')):.0f} img/s, "
          f"torch.compile {t.get('compile_images_per_s', float('nan')):.0f} img/s; JAX "
          f"{t['jax_plain_images_per_s']:.0f} img/s ({t.get('jax_over_torch_compile', float('nan')):.2f}x "
          f"torch.compile)")
  if args.also_batch:
    print(f"  batch {args.also_batch}: {result[f'images_per_s_batch{args.also_batch}']:.0f} img/s")
  if args.out:
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
