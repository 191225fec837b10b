"""Run dirs never lie: a run dir holds one config, checked before anything is written.

A stage asked to work on a run dir whose ``config.json`` holds another config
refuses (``ConfigMismatch``), naming the differing keys and the two ways out: a
new work dir, or ``--restart``, which deletes the artifacts of the first stage
the change affects and of every later stage (``restart``), then saves the new
config. Nothing here imports ``dnas_ee.pipeline``.
(Used by the pipeline, the CLI and the sweep runner.)
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from dnas_ee.config import ConfigError, check_keys, config_from_json, save_config
from dnas_ee.train.loop import is_primary

STAGES = ("search", "derive", "retrain", "calibrate", "evaluate")
# What each stage writes (glob patterns in the run dir); --restart deletes these
# from the first affected stage on.
ARTIFACTS = {
    "search": ("search_metrics.jsonl", "search_arch.json", "checkpoints/search", "timing.json",
               "search_trajectory.json", "plots/search_*.png", "tensorboard/search"),
    "derive": ("genotype.json", "method_search.json", "inherited.json"),
    "retrain": ("checkpoints/retrain_*", "retrain_*_metrics.jsonl"),
    "calibrate": ("thresholds.json",),
    "evaluate": ("summary.json", "report.md", "*.png"),
}
# The first stage a changed key affects (by its section; the rest: the search).
_FIRST_STAGE = {"derive": "derive", "retrain": "retrain", "calibrate": "calibrate",
                "evaluate": "evaluate"}
_DERIVE_ONLY = ("method.evaluations", "method.population", "method.score_samples",
                "method.branch_ops", "method.bits")


class ConfigMismatch(ConfigError):
  """The run dir holds another config."""


def flatten(tree: dict, prefix: str = "") -> dict:
  """``{'a': {'b': 1}} -> {'a.b': 1}``, tuples as lists (as ``config.json`` stores them)."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
  return out


def _plain(config) -> dict:
  return flatten(json.loads(json.dumps(config.to_dict(), default=list)))


def config_diff(saved, requested) -> dict:
  """``{key: (saved value, requested value)}`` of the keys where two configs differ."""
  old, new = _plain(saved), _plain(requested)
  return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
          if old.get(k) != new.get(k)}


def config_hash(config) -> str:
  """A short hash of the whole resolved config (names a sweep member's run dir)."""
  text = json.dumps(_plain(config), sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:8]


def keys_first_affecting(config, stage: str) -> dict:
  """``{key: value}`` of the config's keys whose first affected stage is ``stage``
  (for ``'search'``: everything the search reads)."""
  return {k: v for k, v in _plain(config).items() if first_affected_stage([k]) == stage}


def first_affected_stage(keys) -> str:
  """The earliest stage whose artifacts a change of ``keys`` makes stale."""
  stages = []
  for key in keys:
    section = key.split(".", 1)[0]
    if key in _DERIVE_ONLY:
      stages.append("derive")
    else:
      stages.append(_FIRST_STAGE.get(section, "search"))
  return min(stages, key=STAGES.index) if stages else "evaluate"


def validate_config(config) -> None:
  """Errors (``ConfigError``/``ValueError``) on a config no stage could run, before
  anything is written: unknown keys, the method, the space, calibration targets."""
  from dnas_ee.data.shapes import dataset_shape
  from dnas_ee.methods.stage import check_method
  from dnas_ee.train import build
  check_keys(config)
  check_method(config)
  check_calibration_target(config.calibrate.mode, config.calibrate.max_drop, config.calibrate.budget)
  build.build_space(config, *dataset_shape(config.data))


def check_calibration_target(mode: str, max_drop: float, budget: float) -> None:
  """``budget`` is a fraction of the static backbone's cost in (0, 1]; ``max_drop``
  accuracy points in [0, 100]."""
  if mode == "budget" and not 0 < budget <= 1:
    raise ValueError(f"calibration budget {budget:g} is out of range: give the cost as a fraction "
                     "of the static backbone's, in (0, 1], e.g. --budget 0.5")
  if mode == "accuracy_floor" and not 0 <= max_drop <= 100:
    raise ValueError(f"calibration max_drop {max_drop:g} is out of range: give accuracy points "
                     "below the final exit, in [0, 100], e.g. --max-drop 0.5")


def _mismatch_message(path: Path, diff: dict) -> str:
  shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
  stage = first_affected_stage(diff)
  return (f"{path} holds another config ({len(diff)} key(s) differ: {shown}). Use a new "
          f"--workdir, or pass --restart to delete this run's '{stage}' stage and every later one "
          "and rerun them with the requested config")


def check_same_config(config, workdir) -> None:
  """Raises ``ConfigMismatch`` if ``workdir/config.json`` holds another config."""
  saved = Path(workdir) / "config.json"
  if saved.exists():
    diff = config_diff(config_from_json(saved), config)
    if diff:
      raise ConfigMismatch(_mismatch_message(saved, diff))


def prepare_run_dir(config, workdir) -> Path:
  """Validates ``config``, refuses another run's dir, then creates it and saves the config."""
  validate_config(config)
  check_same_config(config, workdir)
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if is_primary():   # multi-host: process 0 writes the run dir
    save_config(config, workdir / "config.json")
  return workdir


def restart(config, workdir) -> list[str]:
  """Deletes the artifacts the config change makes stale, saves the new config.

  Returns:
    The stages cleared (empty when the config is unchanged or the dir is new).
  """
  validate_config(config)
  workdir = Path(workdir)
  saved = workdir / "config.json"
  cleared = []
  if saved.exists():
    diff = config_diff(config_from_json(saved), config)
    if diff:
      cleared = list(STAGES[STAGES.index(first_affected_stage(diff)):])
      for stage in cleared:
        for pattern in ARTIFACTS[stage]:
          for path in workdir.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
  workdir.mkdir(parents=True, exist_ok=True)
  save_config(config, saved)
  return cleared
