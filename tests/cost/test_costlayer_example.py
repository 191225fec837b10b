"""The README's cost-layer code runs as written; the worked example runs end to end."""
import importlib.util
import re
import warnings
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _readme_cost_layer_block() -> str:
  readme = (ROOT / "README.md").read_text(encoding="utf-8")
  section = readme.split("## The cost layer (a public API)", 1)[1].split("\n## ", 1)[0]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_cost_layer_block_runs_as_written():
  block = _readme_cost_layer_block()
  user_lines = [line for line in block.splitlines() if "# dnas-ee" in line]
  assert 0 < len(user_lines) < 15
  namespace: dict = {}
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")    # the LUT lacks these layers: filled, with a warning
    exec(compile(block, "README.md (cost layer)", "exec"), namespace)
  table, grads = namespace["table"], namespace["grads"]
  assert table.metrics == ("latency_s", "energy_j")
  assert table.backbone.shape == (2, 2) and table.exits.shape == (1, 2)
  assert np.all(table.backbone > 0) and np.all(table.exits > 0)
  leaves = jax.tree.leaves(grads)
  assert leaves and all(np.all(np.isfinite(g)) for g in leaves)


def test_worked_example_runs_and_latency_falls_with_lambda():
  path = ROOT / "experiments" / "examples" / "early_exit_latency.py"
  spec = importlib.util.spec_from_file_location("costlayer_worked_example", path)
  example = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(example)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    rows = example.main(["--steps", "60", "--lams", "0", "4"])
  (lam0, acc0, rates0, latency0), (lam4, _, rates4, latency4) = rows
  assert (lam0, lam4) == (0.0, 4.0)
  np.testing.assert_allclose(rates0.sum(), 1.0, rtol=1e-5)
  assert acc0 > 0.5                       # it learned something in 60 steps
  assert latency4 < latency0              # the penalty lowered the deployed latency
