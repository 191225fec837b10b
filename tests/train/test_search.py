"""The search loop: no retracing, multi-device equality, kill/resume, non-finite stop, errors."""
import json
import shutil
import signal
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pytest

from support.runs import HANG_TIMEOUT_S, ROOT, subprocess_env, tiny_overrides
from dnas_ee import pipeline
from dnas_ee.config import apply_overrides
from dnas_ee.train.loop import NonFiniteError
from dnas_ee.train.search import search_step


def test_schedules_do_not_retrace_the_step(tiny_config):
  run = pipeline.prepare_search(tiny_config)
  chex.clear_trace_counter()

  def traced_step(state, train_batch, val_batch, ctx):
    return search_step(state, train_batch, val_batch, ctx, setup=run.setup)

  step_fn = jax.jit(chex.assert_max_traces(traced_step, n=1), donate_argnums=0)
  state, temps = run.state, []
  for step in range(8):   # crosses the end of the warm-up (6): the arch step switches on
    state, metrics = step_fn(state, *pipeline.search_batches(run, tiny_config, step), run.ctx)
    temps.append(float(metrics["op_temperature"]))
  assert len(set(temps)) > 1      # the schedule did move
  assert int(state.step) == 8


FOUR_DEVICES = r"""
import json
import os
import jax, numpy as np
from jax.sharding import Mesh
from support.runs import tiny_overrides
from dnas_ee import pipeline
from dnas_ee.config import apply_overrides, load_config_file
from dnas_ee.train.search import jit_search_step
assert jax.device_count() == 4, jax.devices()
config = load_config_file("experiments/configs/digits.py")
from dnas_ee.train.search import _arch_grads
from dnas_ee.train.xla import jit as dnas_jit
# Weights over three steps (the architecture frozen by the warm-up), and the architecture
# gradient at the first step: Adam's normalization would turn float-order noise in a
# near-zero architecture gradient into a full step, so the gradients are compared.
# A smaller space than the other tests' (three ops, one slot, two widths): the
# sharding is what is checked, and compiling the programs dominates the run.
# Widths of 24 and 32 bits: the same maths in another order of float reductions differs in
# the last bits, which a 2-8 bit fake quantization can round to a whole level apart (then
# Adam turns a near-zero gradient's sign into a full step); at 24/32 bits it cannot.
apply_overrides(config, tiny_overrides() + [
    "--config.search.warmup_steps=3", "--config.space.branch_ops=('conv3_s2_x1', 'dwsep3_s1_x2', "
    "'identity')", "--config.space.branch_depth=1", "--config.space.branch_resolutions=(4,)",
    "--config.space.bits=(24, 32)", "--config.space.edge_bits=24"])
out, grads = {}, {}
# "ynn": one device again, compiled with XLA:CPU's YNNPACK fusions (dnas_ee.train.xla turns them
# off): the same program in another reduction order.
for n, devices in ((1, 1), (4, 4), ("ynn", 1)):
  if n == "ynn":
    os.environ["DNAS_EE_YNN_FUSIONS"] = "on"
  run = pipeline.prepare_search(config, mesh=Mesh(np.array(jax.devices()[:devices]), ("data",)))
  step_fn, state = jit_search_step(run.setup), run.state
  rngs = jax.random.split(jax.random.key(0), 4)
  g, _ = dnas_jit(lambda s, b: _arch_grads(run.setup, run.ctx, s, *b, rngs))(
      state, pipeline.search_batches(run, config, 0))
  grads[n] = [np.asarray(x) for x in jax.tree.leaves(g)]
  for step in range(3):
    state, metrics = step_fn(state, *pipeline.search_batches(run, config, step), run.ctx)
  out[n] = [np.asarray(x) for x in jax.tree.leaves((state.params, state.arch, state.stats))]
  if n == 4:
    assert len(state.params["stem"]["conv"]["kernel"].value.sharding.device_set) == 4
total = np.sqrt(sum(float(np.sum(a ** 2)) for a in grads[1]))
record = {}
for other in (4, "ynn"):
  record[f"worst_relative_difference_{other}"] = max(
      float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-6)) for a, b in zip(out[1], out[other]))
  record[f"arch_gradient_difference_{other}"] = np.sqrt(sum(
      float(np.sum((a - b) ** 2)) for a, b in zip(grads[1], grads[other]))) / total
print(json.dumps(record))
"""


def test_step_on_four_devices_or_with_ynn_fusions_equals_single_device():
  env = subprocess_env(4)
  env.pop("DNAS_EE_YNN_FUSIONS", None)
  result = subprocess.run([sys.executable, "-c", FOUR_DEVICES], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=HANG_TIMEOUT_S)
  assert result.returncode == 0, result.stderr[-3000:]
  record = json.loads(result.stdout.strip().splitlines()[-1])
  for other in (4, "ynn"):   # same maths; only the order of float reductions differs
    assert record[f"worst_relative_difference_{other}"] < 1e-5, record
    assert record[f"arch_gradient_difference_{other}"] < 1e-5, record


def _cli(workdir, *extra):
  return [sys.executable, "-m", "dnas_ee.cli", "search", "--config", "experiments/configs/digits.py",
          "--workdir", str(workdir), "--no-progress", *tiny_overrides(), *extra]


def test_killed_search_resumes_to_the_same_genotype(tmp_path):
  env = subprocess_env(1)
  reference = subprocess.run(_cli(tmp_path / "whole"), cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=HANG_TIMEOUT_S)
  assert reference.returncode == 0, reference.stderr[-3000:]
  # Kill a second run with SIGKILL once its first checkpoint (step 8) is on disk (or it
  # ended on its own: then the assertion below says it was killed too late).
  proc = subprocess.Popen(_cli(tmp_path / "killed"), cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  ckpts = tmp_path / "killed" / "checkpoints" / "search"
  while proc.poll() is None and not any(p.name.isdigit() for p in ckpts.glob("*")):
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (tmp_path / "killed" / "search_arch.json").exists(), "killed too late to test resume"
  resumed = subprocess.run(_cli(tmp_path / "killed"), cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=HANG_TIMEOUT_S)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  whole = json.loads((tmp_path / "whole" / "search_arch.json").read_text())
  again = json.loads((tmp_path / "killed" / "search_arch.json").read_text())
  for key in whole:
    np.testing.assert_array_equal(np.asarray(whole[key]), np.asarray(again[key]), err_msg=key)


def test_nan_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, tiny_config):
  pipeline.search(tiny_config, tmp_path / "finite", progress=False)   # 24 finite steps
  # The same checkpoints continued under a diverging config, in a dir of its own (a run
  # dir refuses another config): the search resumes at step 24 and blows up.
  shutil.copytree(tmp_path / "finite" / "checkpoints", tmp_path / "checkpoints")
  apply_overrides(tiny_config, ["--config.search.steps=48", "--config.search.w_lr=1e30"])
  with pytest.raises(NonFiniteError, match=r"non-finite .* at step \d+.*last good checkpoint "
                                           r"\(step 24\).*intact.*search.w_lr"):
    pipeline.search(tiny_config, tmp_path, progress=False)
  from dnas_ee.checkpoint import Checkpointer
  run = pipeline.prepare_search(tiny_config)
  ckpt = Checkpointer(tmp_path / "checkpoints" / "search")
  assert ckpt.latest_step() == 24
  restored = ckpt.restore(run.state)
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(restored.params))


BATCH_NOT_DIVISIBLE = r"""
import jax, numpy as np
from jax.sharding import Mesh
from dnas_ee.train.parallel import check_batch_size
mesh = Mesh(np.array(jax.devices()[:4]), ("data",))
check_batch_size(32, mesh, "search.batch_size")          # divisible: fine
try:
  check_batch_size(30, mesh, "search.batch_size")
except ValueError as err:
  print("ERROR:", err)
"""


def test_batch_size_not_divisible_by_devices_is_an_error():
  result = subprocess.run([sys.executable, "-c", BATCH_NOT_DIVISIBLE], cwd=ROOT,
                          env=subprocess_env(4), capture_output=True, text=True,
                          timeout=HANG_TIMEOUT_S)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "ERROR:" in result.stdout and "search.batch_size" in result.stdout
  assert "30" in result.stdout and "4" in result.stdout


def test_missing_data_dir_is_a_clear_error(tiny_config):
  apply_overrides(tiny_config, ["--config.data.name=cifar10", "--config.data.dir=/nonexistent"])
  with pytest.raises(ValueError, match="cifar-10-python.tar.gz.*data.dir"):
    pipeline.prepare_search(tiny_config)


@pytest.mark.parametrize("order", ["second", "single_level"])
def test_other_bilevel_orders_update_the_architecture(tiny_config, order):
  apply_overrides(tiny_config, [f"--config.search.order={order}", "--config.search.unroll_lr=0.01",
                                "--config.search.warmup_steps=0"])
  run = pipeline.prepare_search(tiny_config)
  from dnas_ee.train.search import jit_search_step
  step_fn = jit_search_step(run.setup)
  before = [np.asarray(x) for x in jax.tree.leaves(run.state.arch)]
  state = run.state
  for step in range(2):
    state, metrics = step_fn(state, *pipeline.search_batches(run, tiny_config, step), run.ctx)
  after = [np.asarray(x) for x in jax.tree.leaves(state.arch)]
  assert bool(metrics["finite"])
  assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_second_order_gradient_differs_from_first_order(tiny_config):
  """The unrolled step changes the architecture gradient (it is not silently first-order)."""
  from dnas_ee.train.search import _arch_grads
  import dataclasses
  apply_overrides(tiny_config, ["--config.search.warmup_steps=0"])
  run = pipeline.prepare_search(tiny_config)
  batches = pipeline.search_batches(run, tiny_config, 0)
  rngs = jax.random.split(jax.random.key(0), 4)
  grads = {}
  for order, lr in (("first", 0.0), ("second", 0.1)):
    setup = dataclasses.replace(run.setup, order=order, unroll_lr=lr)
    g, _ = jax.jit(lambda s: _arch_grads(setup, run.ctx, s, *batches, rngs))(run.state)
    grads[order] = np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)])
  assert np.all(np.isfinite(grads["second"]))
  assert not np.allclose(grads["first"], grads["second"])


def test_second_order_with_a_zero_unrolled_step_is_an_error(tiny_config):
  apply_overrides(tiny_config, ["--config.search.order=second", "--config.search.unroll_lr=0.0"])
  with pytest.raises(ValueError, match="unroll_lr=0 is the first-order gradient"):
    pipeline.prepare_search(tiny_config)


def test_second_order_defaults_to_darts_xi_equal_to_the_weight_lr(tiny_config):
  apply_overrides(tiny_config, ["--config.search.order=second", "--config.search.w_lr=0.07"])
  assert pipeline.prepare_search(tiny_config).setup.unroll_lr == pytest.approx(0.07)
