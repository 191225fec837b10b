"""The shared training loop resumes, logs (JSONL and TensorBoard) and stops at a
non-finite step."""
from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import pytest

from dnas_ee.checkpoint import Checkpointer
from dnas_ee.train import loop


@dataclasses.dataclass(frozen=True)
class _State:
  step: jax.Array
  x: jax.Array
  nonfinite_step: jax.Array


jax.tree_util.register_dataclass(_State, data_fields=["step", "x", "nonfinite_step"],
                                 meta_fields=[])


def _step(state: _State, batch):
  x = state.x + batch
  bad = ~jnp.isfinite(x)
  return (_State(state.step + 1, jnp.where(bad, state.x, x),
                 jnp.where(bad & (state.nonfinite_step < 0), state.step, state.nonfinite_step)),
          dict(x=x, parts=jnp.stack([x, 2 * x])))


def _fit(tmp_path, steps, batches=lambda step: (jnp.float32(1.0),)):
  fresh = _State(jnp.zeros((), jnp.int32), jnp.zeros(()), jnp.full((), -1, jnp.int32))
  return loop.fit(fresh, _step, batches, steps=steps, cadence=loop.Cadence(2, 4, 2),
                  checkpoint_dir=tmp_path / "ckpt", metrics_path=tmp_path / "m.jsonl",
                  tensorboard_dir=tmp_path / "tb", name="toy", advice="Lower it.",
                  progress=False, postfix=dict(x="x"))


def test_fit_resumes_logs_and_writes_tensorboard_events(tmp_path):
  _fit(tmp_path, 5)
  state = _fit(tmp_path, 8)        # resumes from the step-5 checkpoint
  assert float(state.x) == 8.0
  records = [json.loads(l) for l in (tmp_path / "m.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [2, 4, 5, 6, 8]
  assert records[-1]["parts"] == [8.0, 16.0]
  assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_fit_stops_at_a_non_finite_step(tmp_path):
  batches = lambda step: (jnp.float32(jnp.inf if step == 5 else 1.0),)
  with pytest.raises(loop.NonFiniteError, match=r"toy: non-finite .* step 5.*step 4.*Lower it"):
    _fit(tmp_path, 8, batches)
  assert Checkpointer(tmp_path / "ckpt").latest_step() == 4


def test_time_counts_on_across_a_resume(tmp_path):
  _fit(tmp_path, 5)
  path = tmp_path / "m.jsonl"
  records = [json.loads(l) for l in path.read_text().splitlines()]
  # As if the first run had taken 100 s to reach step 5 (its wall-clock is milliseconds).
  path.write_text("".join(json.dumps(dict(r, time_s=r["time_s"] + 100.0)) + "\n" for r in records))
  assert loop.logged_seconds(path, 5) == pytest.approx(records[-1]["time_s"] + 100.0)
  assert loop.logged_seconds(path, 3) == pytest.approx(records[0]["time_s"] + 100.0)
  assert loop.logged_seconds(tmp_path / "none.jsonl", 5) == 0.0
  _fit(tmp_path, 8)
  resumed = [json.loads(l) for l in path.read_text().splitlines()]
  assert [r["step"] for r in resumed] == [2, 4, 5, 6, 8]
  assert all(r["time_s"] >= 100.0 for r in resumed[2:])
  assert resumed[-1]["time_s"] >= resumed[2]["time_s"]
