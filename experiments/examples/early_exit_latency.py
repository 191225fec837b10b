"""A user's own early-exit CNN trained with an expected-latency penalty on ``edge_tpu_like``.

Nothing here comes from dnas-ee's search space or supernet: the network is a
plain Flax NNX CNN with two early exits, and dnas-ee only supplies the cost layer:

    loss = sum_i CE_i + lam * E[latency] / latency of the static network

``E[latency]`` is ``cost.early_exit_cost`` over the soft exit decisions
``sigmoid((confidence - 0.8) / 0.1)`` of each sample, with per-segment latencies
traced from the model (``trace_exit_network``) and priced on the accelerator
(``hw.LayerCosts``: the shipped LUT, missing layers computed by the model).
For each ``lam`` the script trains a fresh network and prints, on held-out
digits, the accuracy of the early-exit network (hard thresholds), its exit rates
and its latency against the static network: the latency falls as ``lam`` grows.

    python experiments/examples/early_exit_latency.py               # ~1 min on 2 CPU cores
    python experiments/examples/early_exit_latency.py --steps 40    # the test's reduced run
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits

from dnas_ee import cost, trace_exit_network
from dnas_ee.hw import LayerCosts

THRESHOLD, TEMPERATURE = 0.8, 0.1


def gap(h):
  return h.mean(axis=(1, 2))


class ExitCnn(nnx.Module):
  """8x8x1 digits: stage1 -> exit1 -> stage2 -> exit2 -> stage3 (final classifier)."""

  def __init__(self, rngs: nnx.Rngs):
    conv = lambda cin, cout, s=1: nnx.Conv(cin, cout, (3, 3), strides=s, rngs=rngs)
    self.stage1 = nnx.Sequential(conv(1, 16), nnx.relu)
    self.exit1 = nnx.Sequential(conv(16, 16, 2), nnx.relu, gap, nnx.Linear(16, 10, rngs=rngs))
    self.stage2 = nnx.Sequential(conv(16, 32, 2), nnx.relu, conv(32, 32), nnx.relu)
    self.exit2 = nnx.Sequential(gap, nnx.Linear(32, 10, rngs=rngs))
    self.stage3 = nnx.Sequential(conv(32, 64, 2), nnx.relu, conv(64, 64), nnx.relu, gap,
                                 nnx.Linear(64, 10, rngs=rngs))

  def segments(self):
    return [self.stage1, self.exit1, self.stage2, self.exit2, self.stage3]

  def __call__(self, x):
    h1 = self.stage1(x)
    h2 = self.stage2(h1)
    return [self.exit1(h1), self.exit2(h2), self.stage3(h2)]


def confidences(logits):
  """[B, exits] max softmax probability of every early exit."""
  return jnp.stack([jax.nn.softmax(l).max(-1) for l in logits[:-1]], axis=1)


def loss_fn(model, x, y, lam, table):
  logits = model(x)
  ce = sum(optax.softmax_cross_entropy_with_integer_labels(l, y).mean() for l in logits)
  latency = cost.early_exit_cost(table.backbone, table.exits, confidences=confidences(logits),
                                 thresholds=THRESHOLD, temperature=TEMPERATURE).mean[0]
  return ce + lam * latency / table.static[0]


def make_step(table):
  """One jitted Adam step; ``lam`` is an argument, so every lambda reuses the compilation."""

  @nnx.jit
  def step(model, opt, x, y, lam):
    grads = nnx.grad(loss_fn)(model, x, y, lam, table)
    opt.update(model, grads)

  return step


def train(step, init, lam, data, steps, seed=0, batch=64):
  """Trains a copy of ``init`` (every lambda starts from the same weights)."""
  x_train, y_train = data
  model = nnx.clone(init)
  opt = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
  rng = np.random.default_rng(seed)
  for _ in range(steps):
    idx = rng.choice(len(x_train), batch, replace=False)
    step(model, opt, x_train[idx], y_train[idx], jnp.float32(lam))
  return model


@nnx.jit
def _deployed(model, table, x, y):
  logits = model(x)
  leave_early = confidences(logits) >= THRESHOLD
  hard = cost.early_exit_cost(table.backbone, table.exits,
                              exit_probs=leave_early.astype(jnp.float32))
  taken = jnp.argmax(hard.leave, axis=1)
  preds = jnp.stack([l.argmax(-1) for l in logits], axis=1)[jnp.arange(len(y)), taken]
  return (preds == y).mean(), hard.leave.mean(0), hard.mean[0]


def evaluate(model, table, x, y):
  """Accuracy, exit rates and mean latency of the deployed network (hard thresholds)."""
  acc, rates, latency = _deployed(model, table, x, y)
  return float(acc), np.asarray(rates), float(latency)


def digits(split=1500):
  data = load_digits()
  x = (data.images / 16.0).astype(np.float32)[..., None]
  perm = np.random.default_rng(0).permutation(len(x))
  x, y = x[perm], data.target[perm].astype(np.int32)
  return (x[:split], y[:split]), (x[split:], y[split:])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=300, help="training steps per lambda")
  parser.add_argument("--lams", type=float, nargs="+", default=[0.0, 0.25, 1.0, 4.0])
  args = parser.parse_args(argv)
  train_data, (x_test, y_test) = digits()

  init = ExitCnn(nnx.Rngs(0))
  net = trace_exit_network(init.segments(), x_test[:1])
  table = cost.cost_table(net, LayerCosts("edge_tpu_like"))
  static_us = table.static[0] * 1e6
  print(f"static network on edge_tpu_like: {static_us:.3f} us, "
        f"segments {np.round(table.backbone[:, 0] * 1e6, 3).tolist()} us, "
        f"exits {np.round(table.exits[:, 0] * 1e6, 3).tolist()} us")
  print(f"{'lam':>6} {'accuracy':>9} {'exit rates':>20} {'latency (us)':>13} {'vs static':>10}")
  rows, step = [], make_step(table)
  for lam in args.lams:
    model = train(step, init, lam, train_data, args.steps)
    acc, rates, latency = evaluate(model, table, x_test, y_test)
    rows.append((lam, acc, rates, latency))
    print(f"{lam:6.2f} {acc:9.2%} {' / '.join(f'{r:.2f}' for r in rates):>20} "
          f"{latency * 1e6:13.3f} {latency / table.static[0] - 1:+10.1%}")
  return rows


if __name__ == "__main__":
  main()
