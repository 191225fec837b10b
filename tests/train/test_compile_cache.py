"""The persistent compilation cache: a second process reuses the first one's compilation."""
import json
import os
import subprocess
import sys

from support.runs import HANG_TIMEOUT_S, ROOT

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
