"""One search across processes (``mesh.multi_host``): two local CPU processes joined by
``jax.distributed`` (coordinator on localhost, JAX's CPU collectives) search exactly as one
process holding the same two devices, only process 0 writes the run dir, and a run whose
processes are killed, either one, resumes from its checkpoints to the same result."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from support.runs import HANG_TIMEOUT_S, ROOT, subprocess_env
from dnas_ee.train import parallel

WORKER = Path(__file__).with_name("multi_host_worker.py")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _start(workdir, logs, name, env, *kill):
  out = open(logs / f"{name}.log", "w")
  return subprocess.Popen([sys.executable, str(WORKER), str(workdir), str(logs / f"{name}.writes"),
                           *map(str, kill)], cwd=ROOT, env=env, stdout=out, stderr=out)


def _tail(logs, name):
  return (logs / f"{name}.log").read_text()[-3000:]


def _launch(workdir, logs, tag, *, victim=None, kill_at=(), timeout=HANG_TIMEOUT_S):
  """Runs the two processes; with ``victim``, that one kills itself at ``kill_at`` and the
  other is then killed too (as a job scheduler ends a job one of whose processes died)."""
  port = _free_port()
  procs = []
  for pid in range(2):
    env = dict(subprocess_env(1), JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
               DNAS_EE_NUM_PROCESSES="2", DNAS_EE_PROCESS_ID=str(pid))
    procs.append(_start(workdir, logs, f"{tag}-{pid}", env, *(kill_at if pid == victim else ())))
  deadline = time.time() + timeout
  try:
    while time.time() < deadline:
      codes = [p.poll() for p in procs]
      if victim is None and all(c is not None for c in codes):
        for pid, code in enumerate(codes):
          assert code == 0, _tail(logs, f"{tag}-{pid}")
        return
      if victim is not None and codes[victim] is not None:
        assert codes[victim] == -signal.SIGKILL, _tail(logs, f"{tag}-{victim}")
        return
      for pid, code in enumerate(codes):
        assert code in (None, 0), _tail(logs, f"{tag}-{pid}")
      time.sleep(0.2)
    raise AssertionError(f"{tag}: hung past {timeout} s")
  finally:
    for p in procs:
      if p.poll() is None:
        p.send_signal(signal.SIGKILL)
      p.wait()


def _writes(logs, name):
  path = logs / f"{name}.writes"
  return set(path.read_text().split()) if path.exists() else set()


@pytest.mark.slow
def test_two_processes_search_as_one_and_resume_after_either_is_killed(tmp_path):
  logs = tmp_path / "logs"
  logs.mkdir()
  one, two = tmp_path / "one", tmp_path / "two"
  # The reference: one process holding both devices, the same global batch of 32.
  ref = _start(one, logs, "one", subprocess_env(2))
  assert ref.wait(timeout=HANG_TIMEOUT_S) == 0, _tail(logs, "one")

  ckpts = two / "checkpoints" / "search"
  _launch(two, logs, "a", victim=1, kill_at=(10, 8))    # process 1 dies between checkpoints
  assert (ckpts / "8").is_dir() and not (ckpts / "24").exists()
  _launch(two, logs, "b", victim=0, kill_at=(18, 16))   # then process 0 (the writer)
  assert (ckpts / "16").is_dir() and not (ckpts / "24").exists()
  assert not (two / "search_arch.json").exists()
  _launch(two, logs, "c")                                # resumed from step 16 to the end

  a, b = (json.loads((d / "search_arch.json").read_text()) for d in (one, two))
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_allclose(np.asarray(b[key]), np.asarray(a[key]), rtol=1e-5, atol=1e-6,
                               err_msg=key)
  records = [[json.loads(line) for line in (d / "search_metrics.jsonl").read_text().splitlines()]
             for d in (one, two)]
  assert [r["step"] for r in records[1]] == [r["step"] for r in records[0]] == [4, 8, 12, 16, 20, 24]
  for r, s in zip(*records):
    np.testing.assert_allclose(s["loss"], r["loss"], rtol=1e-5)

  # Process 1 never wrote outside the checkpoints; process 0 wrote the run's files.
  assert not set().union(*(_writes(logs, f"{tag}-1") for tag in "abc"))
  written = set().union(*(_writes(logs, f"{tag}-0") for tag in "abc"))
  assert {"config.json", "search_metrics.jsonl", "search_arch.json"} <= written


def test_distributed_args_from_the_environment():
  assert parallel.distributed_args({}) == {}   # SLURM, Open MPI, TPU pods: JAX detects them
  env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "DNAS_EE_NUM_PROCESSES": "4",
         "DNAS_EE_PROCESS_ID": "3"}
  assert parallel.distributed_args(env) == dict(
      coordinator_address="10.0.0.1:1234", num_processes=4, process_id=3,
      cluster_detection_method="deactivate")
  with pytest.raises(ValueError, match="JAX_COORDINATOR_ADDRESS not set"):
    parallel.distributed_args({"DNAS_EE_NUM_PROCESSES": "2", "DNAS_EE_PROCESS_ID": "0"})
  with pytest.raises(ValueError, match="must be integers"):
    parallel.distributed_args(dict(env, DNAS_EE_PROCESS_ID="first"))
