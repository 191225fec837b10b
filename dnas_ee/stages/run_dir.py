"""Reading a run dir: its config, its trained networks, their per-exit outputs.

Every later stage (calibrate, evaluate, the benchmarks) works from the run dir
alone: ``config.json``, ``genotype.json``, the final retraining checkpoints, and
``thresholds.json`` when calibrated.
"""
from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import ml_collections
import numpy as np

from dnas_ee.checkpoint import Checkpointer
from dnas_ee.config import config_from_json
from dnas_ee.exits.confidence import host_confidence
from dnas_ee.exits.thresholds import thresholds_from_json
from dnas_ee.space.genotype import Genotype, genotype_space
from dnas_ee.train import retrain as rt
from dnas_ee.train.build import retrain_setup as train_setup

NETWORKS = ("early_exit", "static")

# (path in the run dir, the command that writes it); the checkpoints are checked
# for the final retraining step.
RUN_FILES = (
    ("config.json", "dnas-ee search (or run) --config ... --workdir {workdir}"),
    ("genotype.json", "dnas-ee derive --workdir {workdir}"),
    ("checkpoints/retrain_early_exit", "dnas-ee retrain --workdir {workdir}"),
    ("checkpoints/retrain_static", "dnas-ee retrain --workdir {workdir}"),
)


def load_run_config(workdir) -> ml_collections.ConfigDict:
  """The resolved config saved in ``workdir/config.json``.

  Raises:
    FileNotFoundError: no ``config.json`` (the message names the command that writes it).
  """
  path = Path(workdir) / "config.json"
  if not path.exists():
    raise FileNotFoundError(f"{path} is missing: run `dnas-ee search --config ... --workdir {workdir}` first")
  return config_from_json(path)


def check_run_files(workdir, config=None) -> None:
  """Raises ``FileNotFoundError`` naming every file evaluation needs that ``workdir`` lacks.

  Args:
    workdir: the run dir.
    config: the run's config (for the final retraining step); read from
      ``workdir/config.json`` when None.

  Raises:
    FileNotFoundError: one line per missing file, with the command that writes it.
  """
  workdir = Path(workdir)
  if not workdir.is_dir():
    raise FileNotFoundError(f"run dir {workdir} does not exist")
  if config is None and (workdir / "config.json").exists():
    config = load_run_config(workdir)
  steps = None if config is None else int(config.retrain.steps)
  missing = []
  for name, command in RUN_FILES:
    path = workdir / name
    if name.startswith("checkpoints/"):
      if not path.is_dir():
        missing.append(f"{path} (run `{command.format(workdir=workdir)}`)")
      elif steps is not None and not (path / str(steps)).is_dir():
        missing.append(f"{path}/{steps}, the final retraining checkpoint (run "
                       f"`{command.format(workdir=workdir)}` to finish the retraining)")
    elif not path.exists():
      missing.append(f"{path} (run `{command.format(workdir=workdir)}`)")
  if missing:
    raise FileNotFoundError(f"run dir {workdir} is missing " + "; ".join(missing))


def network_space(genotype: Genotype, which: str):
  """The derived space of ``which`` (``'early_exit'`` or ``'static'``)."""
  return genotype_space(genotype if which == "early_exit" else genotype.static)


def load_trained(config, workdir, which: str):
  """(space, setup, state) of a retrained network, from the work dir alone.

  Raises:
    FileNotFoundError: ``genotype.json`` or the final retraining checkpoint of
      ``which`` is missing (the message names it and the command that writes it).
  """
  if which not in NETWORKS:
    raise ValueError(f"unknown network {which!r}; use one of {NETWORKS}")
  workdir = Path(workdir)
  genotype = Genotype.load(workdir / "genotype.json")
  ckpt_dir = workdir / "checkpoints" / f"retrain_{which}"
  if not ckpt_dir.is_dir():   # checked first: the Checkpointer would create it
    raise FileNotFoundError(f"{ckpt_dir} is missing (no retraining checkpoint of the {which} "
                            f"network): run `dnas-ee retrain --workdir {workdir}` first")
  space = network_space(genotype, which)
  setup, state = train_setup(config, space, config.seed)
  ckpt = Checkpointer(ckpt_dir)
  if ckpt.latest_step() != config.retrain.steps:
    raise FileNotFoundError(f"no final retraining checkpoint (step {config.retrain.steps}) in "
                            f"{ckpt_dir}: run `dnas-ee retrain --workdir {workdir}` first")
  state = ckpt.restore(state)
  ckpt.close()
  return space, setup, state


def exit_logits(setup, state, images: np.ndarray, batch_size: int) -> np.ndarray:
  """[E, N, K] logits of every exit, in inference mode.

  Every batch is padded to ``batch_size`` rows (BatchNorm uses its running
  statistics, so padding cannot change a real row): one compiled shape, and no
  batch of one row, whose programs round differently in the last bits.
  """
  outs = []
  for i in range(0, len(images), batch_size):
    batch = np.asarray(images[i:i + batch_size], np.float32)
    rows = len(batch)
    if rows < batch_size:
      batch = np.concatenate([batch, np.zeros((batch_size - rows,) + batch.shape[1:], batch.dtype)])
    logits = rt.eval_logits(setup.graphdef, state.params, setup.arch, state.stats,
                            jnp.asarray(batch))
    outs.append(np.asarray(logits)[:, :rows])
  return np.concatenate(outs, axis=1)


def exit_table(logits: np.ndarray, labels: np.ndarray, measure: str):
  """(confidence [N, E], correct [N, E]) from per-exit logits.

  Confidences come from ``host_confidence`` (row by row, independent of the
  batch), the same scores ``EarlyExitExecutor`` decides on.
  """
  logits = np.asarray(logits)
  conf = host_confidence(np.moveaxis(logits, 0, 1), measure)      # [N, E]
  correct = (logits.argmax(-1) == labels[None, :]).T
  return conf, correct


def evaluation_thresholds(config, workdir, num_early: int, *, with_source: bool = False):
  """Early-exit thresholds of the evaluation: ``thresholds.json`` (calibrated), else
  ``evaluate.thresholds``, else ``exits.search_threshold`` for every exit.

  Returns:
    ``[num_early]`` float64 thresholds (``+inf`` disables an exit), and where they
    came from when ``with_source``.

  Raises:
    ValueError: ``thresholds.json`` does not fit the network or the config (the
      message says how to recalibrate).
  """
  workdir = Path(workdir)
  calibrated = workdir / "thresholds.json"
  if not num_early:
    thresholds, source = np.zeros(0), "no early exit"
  elif calibrated.exists():
    record = json.loads(calibrated.read_text())
    if not isinstance(record, dict) or "thresholds" not in record:
      raise ValueError(f"{calibrated} has no 'thresholds' list: re-run `dnas-ee calibrate "
                       f"--workdir {workdir}` or delete it")
    thresholds = thresholds_from_json(record["thresholds"])
    if len(thresholds) != num_early:
      raise ValueError(f"{calibrated} holds {len(thresholds)} thresholds but the network has "
                       f"{num_early} early exits (calibrated for another genotype?): re-run "
                       f"`dnas-ee calibrate --workdir {workdir}` or delete it")
    measure = record.get("confidence", config.exits.confidence)
    if measure != config.exits.confidence:
      raise ValueError(f"{calibrated} was calibrated for the {measure!r} confidence but the "
                       f"config uses {config.exits.confidence!r}: re-run `dnas-ee calibrate "
                       f"--workdir {workdir}` or delete it")
    source = f"calibrated ({calibrated.name}, {record.get('mode', '?')})"
  elif config.evaluate.thresholds:
    if len(config.evaluate.thresholds) != num_early:
      raise ValueError(f"evaluate.thresholds needs {num_early} entries (one per kept exit)")
    thresholds, source = np.asarray(config.evaluate.thresholds, float), "evaluate.thresholds"
  else:
    thresholds = np.full(num_early, float(config.exits.search_threshold))
    source = f"exits.search_threshold={config.exits.search_threshold:g} (uncalibrated)"
  return (thresholds, source) if with_source else thresholds
