"""Run dirs never lie: a run dir holds one config, checked before anything is written.

``validate_config`` checks every value the stages read before ``config.json`` is saved,
so a bad value leaves no run dir behind (and ``no_config_without_results`` removes the
config of a run that fails before any stage wrote a result). A stage asked to work on
a run dir whose ``config.json`` holds another config refuses (``ConfigMismatch``),
naming the differing keys and the two ways out: a new work dir, or ``--restart``,
which deletes the artifacts of the first stage the change affects and of every later
stage (``restart``), then saves the new config. Nothing here imports
``dnas_ee.pipeline``. (Used by the pipeline, the CLI and the sweep runner.)
"""
from __future__ import annotations

import contextlib
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
    "derive": ("genotype.json", "method_search.json", "inherited.json", "one_shot_validity.json",
               "validity"),
    "retrain": ("checkpoints/retrain_*", "retrain_*_metrics.jsonl"),
    "calibrate": ("thresholds.json",),
    "evaluate": ("summary.json", "report.md", "*.png"),
}
# The first stage a changed key affects (by its section; the rest: the search).
_FIRST_STAGE = {"derive": "derive", "retrain": "retrain", "calibrate": "calibrate",
                "evaluate": "evaluate"}
_DERIVE_ONLY = ("method.evaluations", "method.population", "method.score_samples",
                "method.branch_ops", "method.bits", "method.validity_candidates")
# derive.rule: the rules of dnas_ee.space.genotype.derive_genotype.
DERIVE_RULES = ("threshold", "top_k")
# calibrate.reference: what the accuracy floor is measured against (dnas_ee.stages.calibrate).
CALIBRATION_REFERENCES = ("static", "final_exit")


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


# Keys added after run dirs were named, at the value that behaves as before the key
# existed: left out of a config's identity (``config_hash``, a shared search's key)
# while at that value, so no saved run dir is renamed or retrained by their arrival.
_ADDED_KEY_DEFAULTS = {"search.schedule": "joint", "method.validity_candidates": 0}


def _identity(config) -> dict:
  return {k: v for k, v in _plain(config).items()
          if not (k in _ADDED_KEY_DEFAULTS and v == _ADDED_KEY_DEFAULTS[k])}


def config_diff(saved, requested) -> dict:
  """``{key: (saved value, requested value)}`` of the keys where two configs differ."""
  old, new = _plain(saved), _plain(requested)
  return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
          if old.get(k) != new.get(k)}


def config_hash(config) -> str:
  """A short hash of the whole resolved config (names a sweep member's run dir)."""
  text = json.dumps(_identity(config), sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:8]


def keys_first_affecting(config, stage: str) -> dict:
  """``{key: value}`` of the config's keys whose first affected stage is ``stage``
  (for ``'search'``: everything the search reads)."""
  return {k: v for k, v in _identity(config).items() if first_affected_stage([k]) == stage}


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
  """Raises ``ConfigError``/``ValueError`` on a config some stage could not run, naming the
  key and the fix, before anything is written (``prepare_run_dir``, ``restart``).

  Every value the stages read is checked here, mostly by building on the host what the
  stages build from it (the space, the cost source and its LUT, the objective, the
  schedules, the search set-up), so the checks and their messages are the stages' own.
  Nothing is trained and no data is read: ``data.dir`` is checked to exist.
  """
  from dnas_ee.data.shapes import dataset_shape
  from dnas_ee.exits.confidence import CONFIDENCE_MEASURES
  from dnas_ee.methods.stage import check_method
  from dnas_ee.stages.calibrate import CALIBRATION_MODES
  from dnas_ee.train import build
  from dnas_ee.train.setup import check_backbone_settings
  check_keys(config)
  check_data(config.data)
  check_method(config)
  check_backbone_settings(config)
  space = build.build_space(config, *dataset_shape(config.data))
  for key in ("search.op_temperature", "exits.threshold_temperature", "loss.lam"):
    section, name = key.split(".")
    try:
      build.schedule_from(config[section][name], config.search.steps)
    except ValueError as err:
      raise ConfigError(f"{key}: {err} (--config.{key}.kind=...)") from err
  try:
    source = build.build_cost_source(config, space)
  except ValueError as err:
    raise ConfigError(f"hw.accelerator={config.hw.accelerator!r}, hw.lut={config.hw.lut!r}: "
                      f"{err}") from err
  spec, _ = build.build_objective(config, space, source)
  _check_search(config, spec)
  _check_batch_sizes(config)
  _one_of("exits.confidence", config.exits.confidence, CONFIDENCE_MEASURES)
  _one_of("derive.rule", config.derive.rule, DERIVE_RULES)
  if config.derive.rule == "top_k" and config.derive.top_k < 1:
    raise ConfigError(f"derive.top_k={config.derive.top_k} keeps no exit: set "
                      "--config.derive.top_k=1 or more")
  c = config.calibrate
  _one_of("calibrate.mode", c.mode, CALIBRATION_MODES)
  _one_of("calibrate.reference", c.reference, CALIBRATION_REFERENCES)
  check_calibration_target(c.mode, c.max_drop, c.budget,
                           ("--config.calibrate.max_drop", "--config.calibrate.budget"))
  if len(config.evaluate.thresholds) > len(space.branches) + 1:
    raise ConfigError(f"evaluate.thresholds has {len(config.evaluate.thresholds)} entries, more "
                      f"than the space's {len(space.branches)} exits: give one per kept exit, "
                      "or () to use the calibrated ones")


def _one_of(key: str, value, choices) -> None:
  if value not in choices:
    raise ConfigError(f"unknown {key} {value!r}: set --config.{key} to one of {tuple(choices)}")


def check_data(data_cfg) -> None:
  """``data.*``: the name and split fractions (``dnas_ee.data.load.parse_data_config``);
  for a data set read from files, that ``data.dir`` is a directory (the data module's own
  check and message; the files in it are read by the first stage that loads the data)."""
  from dnas_ee.data import cifar, files, svhn
  from dnas_ee.data.load import parse_data_config
  spec = parse_data_config(data_cfg)
  variants = {"cifar10": cifar.CIFAR10, "cifar100": cifar.CIFAR100}
  if spec.name in variants:
    v = variants[spec.name]
    files.data_dir(spec.dir, v.display, v.expected, v.url)
  elif spec.name == "svhn":
    files.data_dir(spec.dir, "SVHN", f"{svhn.TRAIN_FILE} and {svhn.TEST_FILE}", svhn.URL)


def _check_search(config, objective) -> None:
  """``search.*``: the mixture and gate modes, and the search set-up's own checks (order,
  unrolled step)."""
  from dnas_ee.relax.mixtures import GATE_MODES, MIXTURE_MODES
  from dnas_ee.train.build import schedule_from
  from dnas_ee.train.search import SearchSetup
  s = config.search
  _one_of("search.mixture_mode", s.mixture_mode, MIXTURE_MODES)
  _one_of("search.gate_mode", s.gate_mode, GATE_MODES)
  SearchSetup(graphdef=None, objective=objective, w_tx=None, a_tx=None,
              op_temperature=schedule_from(s.op_temperature, s.steps),
              threshold_temperature=schedule_from(config.exits.threshold_temperature, s.steps),
              order=s.order, unroll_lr=s.w_lr if s.unroll_lr < 0 else s.unroll_lr)  # as prepare_search


def _check_batch_sizes(config) -> None:
  """Each stage's batch size is positive and (search, retraining) splits over the devices."""
  from dnas_ee.train import parallel
  mesh = parallel.make_mesh(config.mesh.multi_host)
  for key in ("search.batch_size", "retrain.batch_size", "evaluate.batch_size"):
    section, name = key.split(".")
    size = config[section][name]
    if size < 1:
      raise ConfigError(f"{key}={size}: set --config.{key} to a positive number of samples")
    if section != "evaluate":
      parallel.check_batch_size(size, mesh, key)


def check_calibration_target(mode: str, max_drop: float, budget: float,
                             flags=("--max-drop", "--budget")) -> None:
  """``budget`` is a fraction of the static backbone's cost in (0, 1]; ``max_drop``
  accuracy points in [0, 100]. ``flags``: how the user sets the two (named in the error)."""
  if mode == "budget" and not 0 < budget <= 1:
    raise ValueError(f"calibration budget {budget:g} is out of range: give the cost as a fraction "
                     f"of the static backbone's, in (0, 1], e.g. {flags[1]}=0.5")
  if mode == "accuracy_floor" and not 0 <= max_drop <= 100:
    raise ValueError(f"calibration max_drop {max_drop:g} is out of range: give accuracy points "
                     f"below the final exit, in [0, 100], e.g. {flags[0]}=0.5")


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


@contextlib.contextmanager
def no_config_without_results(workdir):
  """Stages run inside that fail before any of them wrote a result leave no ``config.json``.

  ``prepare_run_dir`` validates the config before saving it, so a bad value never gets
  that far; this catches the rest (an archive in ``data.dir`` that cannot be read, ...):
  when the dir held no config before and holds no file but its new ``config.json``
  after the failure, the config (and the dir, if made here) is removed, so the corrected
  rerun is not refused as another config.
  """
  workdir = Path(workdir)
  saved = workdir / "config.json"
  made_here, had_config = not workdir.exists(), saved.exists()
  try:
    yield
  except BaseException:
    results = [p for p in workdir.rglob("*") if p.is_file() and p != saved]
    if not had_config and saved.exists() and not results and is_primary():
      if made_here:
        shutil.rmtree(workdir)
      else:
        saved.unlink()
    raise


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
