"""One process of a multi-process search (``test_multi_host.py`` starts them).

    python multi_host_worker.py WORKDIR WRITES [KILL_AT_STEP AFTER_CHECKPOINT]

The environment says which process it is (``dnas_ee.train.parallel.distributed_args``;
none of it: a one-process run). Runs ``dnas-ee search`` (the CLI, in this process: it
joins the processes) on the tests' reduced digits config, with a one-exit space, into WORKDIR,
appending every file this process opens for writing in WORKDIR outside its checkpoints
(orbax's, which every process takes part in) to the text file WRITES. With KILL_AT_STEP, the process
kills itself (SIGKILL, no clean-up) when it asks for that step's batch, once the
checkpoint of step AFTER_CHECKPOINT is on disk: a kill between checkpoints.
"""
import builtins
import io
import os
import signal
import sys
import time
from pathlib import Path


def main(workdir: str, writes_path: str, kill_at: int = -1, after: int = -1) -> None:
  from support.runs import ONE_EXIT_SPACE, ROOT, tiny_overrides
  from dnas_ee import cli
  from dnas_ee.train import loop, parallel
  multi = bool(parallel.distributed_args())

  workdir = Path(workdir).absolute()
  opener = io.open

  def recording(file, mode="r", *args, **kwargs):
    # Appended as they happen: a killed process leaves its record too.
    if isinstance(file, (str, os.PathLike)) and any(m in mode for m in "wax+"):
      path = Path(os.fspath(file)).absolute()
      if workdir in path.parents and "checkpoints" not in path.relative_to(workdir).parts:
        with opener(writes_path, "a") as f:
          f.write(str(path.relative_to(workdir)) + "\n")
    return opener(file, mode, *args, **kwargs)
  builtins.open = io.open = recording

  if kill_at >= 0:
    host_batch = loop.host_batch

    def killing(mesh, images, labels, seed, step, batch_size):
      if step == kill_at:
        while not (workdir / "checkpoints" / "search" / str(after)).is_dir():
          time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)
      return host_batch(mesh, images, labels, seed, step, batch_size)
    loop.host_batch = killing

  # The test checks the processes, not the space; its 7 processes each compile.
  sys.exit(cli.main(["search", "--config", str(ROOT / "experiments" / "configs" / "digits.py"),
                     "--workdir", str(workdir), "--no-progress", *tiny_overrides(), *ONE_EXIT_SPACE,
                     f"--config.mesh.multi_host={multi}"]))


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:]))
