"""The persistent compilation cache: a second process reuses the first one's compilation."""
import json
import os
import subprocess
import sys

from support.runs import HANG_TIMEOUT_S, ROOT, subprocess_env, tiny_overrides

PROGRAM = r"""
import json, jax, jax.numpy as jnp
from jax import monitoring
from dnas_ee.train.compile_cache import enable_compilation_cache
hits = []
monitoring.register_event_listener(
    lambda name, **kw: hits.append(name) if name == "/jax/compilation_cache/cache_hits" else None)
where = enable_compilation_cache(min_compile_time_s=0.0)
step = jax.jit(lambda x: jnp.tanh(x @ x.T).sum())
step(jnp.ones((16, 16))).block_until_ready()
print(json.dumps(dict(dir=str(where), hits=len(hits))))
"""


def _run(cache: str) -> dict:
  env = dict(os.environ, DNAS_EE_COMPILATION_CACHE=cache, JAX_PLATFORMS="cpu")
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, cwd=ROOT, check=True,
                       capture_output=True, text=True, timeout=HANG_TIMEOUT_S)
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_hits_the_cache(tmp_path):
  cache = tmp_path / "jax_cache"
  first = _run(str(cache))
  assert first == dict(dir=str(cache), hits=0)
  assert any(cache.iterdir()), "the first compile wrote no cache entry"
  second = _run(str(cache))
  assert second["hits"] >= 1


def test_cache_can_be_turned_off(tmp_path):
  assert _run("off") == dict(dir="None", hits=0)


def test_a_compilation_is_reported_with_its_split_and_cache_outcome():
  import jax
  import jax.numpy as jnp
  from dnas_ee.train.compile_cache import compile_line, watch_compilations

  def a_uniquely_named_step(x):
    return jnp.tanh(x @ x.T).sum()

  seen = []
  with watch_compilations(seen.append):
    jax.jit(a_uniquely_named_step)(jnp.ones((5, 5))).block_until_ready()
  mine = [c for c in seen if c.name == "a_uniquely_named_step"]
  assert len(mine) == 1
  c = mine[0]
  assert c.cache in ("hit", "miss", "off")
  assert min(c.trace_s, c.lower_s, c.xla_s) >= 0 and c.total_s > 0
  line = compile_line(c)
  assert line.startswith("compiled a_uniquely_named_step in ") and f"persistent cache: {c.cache}" in line


def _search_cli(workdir, cache) -> str:
  """``dnas-ee search`` of the tiny digits run in a new process; its output."""
  env = dict(subprocess_env(), DNAS_EE_COMPILATION_CACHE=str(cache), JAX_PLATFORMS="cpu",
             # every program is stored, however fast this machine compiles it
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  out = subprocess.run([sys.executable, "-m", "dnas_ee.cli", "search", "--config",
                        str(ROOT / "experiments/configs/digits.py"), "--workdir", str(workdir),
                        "--no-progress", *tiny_overrides()],
                       env=env, cwd=ROOT, check=True, capture_output=True, text=True,
                       timeout=HANG_TIMEOUT_S)
  return out.stdout + out.stderr


def test_a_second_search_process_loads_the_search_step_from_the_cache(tmp_path):
  """The search step's cache key is the same in a new process (no run-dependent constant,
  name or order in the program), and the CLI says so."""
  cache = tmp_path / "jax_cache"
  first = _search_step_lines(_search_cli(tmp_path / "run1", cache))
  assert first and all(l.endswith("persistent cache: miss)") for l in first), first
  second = _search_step_lines(_search_cli(tmp_path / "run2", cache))
  assert second and all(l.endswith("persistent cache: hit)") for l in second), second


def _search_step_lines(output: str) -> list[str]:
  return [l for l in output.splitlines() if l.startswith("compiled search step in")]
