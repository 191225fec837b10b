"""Sweeps as data: ``experiments/sweeps/NAME.py`` with ``get_sweep()`` returning a dict.

    def get_sweep():
      return dict(
          configs={"digits": "experiments/configs/digits.py:tiny"},  # label -> config file[:arg]
          overrides=["--config.search.steps=100"],                  # every member
          settings={"default": [], "exit weight 0.3": ["--config.retrain.exit_weight=0.3"]},
          methods={"dnas": [], "static": [], "random": ["--config.method.evaluations=64"]},
          seeds=(0, 1, 2),
          cost="macs",        # cost axis of the Pareto plot: macs, latency_s, energy_j, edp
          resources=dict(cpus=1, gpus=0))   # per member, with --executor ray (the default)

Members are configs x settings x methods x seeds. A method label that names a
method (``dnas_ee.methods.stage.METHODS``) sets ``method.name``; other labels set
it in their overrides (e.g. ``"dnas gumbel": ["--config.method.name=dnas",
"--config.search.mixture_mode='gumbel'"]``). The seed sets ``config.seed``
(initialization and batch order; the data splits stay those of ``data.seed``).
A member's run dir is named from its labels plus a short hash of its whole
resolved config, so a member whose config changed runs in a new dir. ``{seed}`` in
an override string is replaced by the member's seed (a per-seed ``init.backbone``).
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from dnas_ee.config import ConfigError, apply_overrides, import_file_function, load_config_file
from dnas_ee.sweep.executor import Resources

COSTS = ("macs", "latency_s", "energy_j", "edp")
SWEEP_STAGES = ("search", "derive", "retrain", "calibrate", "evaluate", "inherited")
SWEEP_KEYS = ("configs", "overrides", "settings", "methods", "seeds", "cost", "stages", "resources")


@dataclasses.dataclass(frozen=True)
class Member:
  """One run of a sweep."""
  config_label: str
  setting: str
  method: str
  seed: int
  overrides: tuple[str, ...]
  config: object
  dir_name: str

  @property
  def name(self) -> str:
    return f"{self.config_label} / {self.setting} / {self.method} / seed {self.seed}"

  @property
  def group(self) -> tuple[str, str, str]:
    return (self.config_label, self.setting, self.method)


def load_sweep(path) -> dict:
  """Imports a sweep file and checks its ``get_sweep()`` dict."""
  path = Path(path)
  sweep = dict(import_file_function(path, "get_sweep", "sweep", "experiments/sweeps/")())
  unknown = set(sweep) - set(SWEEP_KEYS)
  if unknown:
    raise ConfigError(f"sweep file {path}: unknown keys {sorted(unknown)}; use "
                      f"{', '.join(SWEEP_KEYS)}")
  if not sweep.get("configs"):
    raise ConfigError(f"sweep file {path}: 'configs' must map a label to a config file")
  sweep.setdefault("overrides", [])
  sweep.setdefault("settings", {"default": []})
  sweep.setdefault("methods", {"dnas": []})
  sweep.setdefault("seeds", (0,))
  sweep.setdefault("cost", "macs")
  sweep["resources"] = dict(sweep.get("resources", {}))
  try:
    Resources(**sweep["resources"])
  except (TypeError, ValueError) as err:
    raise ConfigError(f"sweep file {path}: resources={sweep['resources']!r}: {err}; give "
                      "dict(cpus=N, gpus=M), per member") from None
  # The stages every member runs: the whole pipeline, or e.g. ("search", "derive",
  # "inherited") for a one-shot sweep (the derived architecture in the supernet).
  sweep["stages"] = tuple(sweep.get("stages", SWEEP_STAGES[:-1]))
  bad = [s for s in sweep["stages"] if s not in SWEEP_STAGES]
  if bad:
    raise ConfigError(f"sweep file {path}: unknown stages {bad}; use some of {SWEEP_STAGES}")
  if isinstance(sweep["methods"], (list, tuple)):
    sweep["methods"] = {m: [] for m in sweep["methods"]}
  if sweep["cost"] not in COSTS:
    raise ConfigError(f"sweep cost {sweep['cost']!r}: use one of {COSTS}")
  sweep["path"] = str(path)
  return sweep


def lambda_settings(lams) -> dict:
  """Sweep settings ``{"lambda X": overrides}`` holding the penalty weight constant at X
  for the whole search (a lambda sweep's axis)."""
  return {f"lambda {lam:g}": ["--config.loss.lam.kind=constant", f"--config.loss.lam.start={lam}",
                              f"--config.loss.lam.end={lam}"] for lam in lams}


def _slug(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")


def sweep_members(sweep: dict) -> list[Member]:
  """Every member of a sweep, in order (config, setting, method, seed), configs resolved."""
  from dnas_ee.methods.stage import METHODS
  from dnas_ee.stages.run_config import config_hash
  members = []
  for label, config_file in sweep["configs"].items():
    for setting, setting_overrides in sweep["settings"].items():
      for method, method_overrides in sweep["methods"].items():
        for seed in sweep["seeds"]:
          overrides = list(sweep["overrides"]) + list(setting_overrides)
          if method in METHODS:
            overrides.append(f"--config.method.name={method!r}")
          overrides += list(method_overrides) + [f"--config.seed={int(seed)}"]
          # "{seed}" in an override is the member's seed (e.g. one trained backbone per
          # seed: --config.init.backbone='runs/backbone_s{seed}').
          overrides = [o.replace("{seed}", str(int(seed))) for o in overrides]
          config = load_config_file(config_file)
          try:
            apply_overrides(config, overrides)
          except ConfigError as err:
            raise ConfigError(f"sweep {sweep['path']}, member {label}/{setting}/{method}: {err}") from None
          name = _slug(f"{label}-{setting}-{method}-s{seed}")
          members.append(Member(label, setting, method, int(seed), tuple(overrides), config,
                                f"{name}-{config_hash(config)}"))
  return members
