"""Configs as data: ``ml_collections.ConfigDict`` files with ``get_config(arg)``.

Experiment configs live in ``experiments/configs/*.py``; each starts from
``base_config()`` and overrides fields. Configs are locked, so a mistyped key is
an error that names the nearest valid key, both in Python and on the command
line (``--config.search.w_lr=0.1``).
"""
from __future__ import annotations

import ast
import difflib
import importlib.util
import json
from pathlib import Path
from typing import Sequence

import ml_collections


from dnas_ee.errors import ConfigError   # re-exported: the config layer's error type


def schedule(kind="constant", start=1.0, end=1.0, steps=0, delay=0) -> ml_collections.ConfigDict:
  """A schedule as data (see ``dnas_ee.relax.make_schedule``); ``steps=0``: the search length."""
  return ml_collections.ConfigDict(dict(kind=kind, start=float(start), end=float(end),
                                        steps=int(steps), delay=int(delay)))


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = dict(name="digits", dir="", seed=0, val_fraction=0.2, calib_fraction=0.1,
                test_fraction=0.25, limit_train=0, limit_test=0, augment_pad=1, augment_flip=False)
  c.backbone = ml_collections.ConfigDict()
  c.backbone.name = "resnet_cifar"
  c.backbone.options = ml_collections.ConfigDict(
      dict(stage_widths=(16, 32, 64), blocks_per_stage=(1, 1, 1), stem_width=16))
  c.space = dict(exit_positions=(1, 2), branch_depth=2, branch_resolutions=(4, 2),
                 branch_ops=("conv3_s1_x1", "conv3_s2_x1", "conv3_s2_x2", "conv5_s2_x1",
                             "dwsep3_s1_x2", "dwsep5_s2_x2", "maxpool2_s2", "avgpool2_s2",
                             "identity"),
                 bits=(2, 4, 8), edge_bits=8)
  # search_threshold: the initial exit thresholds tau_i, which the search learns
  # (learn_thresholds) on the validation split with the same objective.
  # thresholds_as_placed: the thresholds learn the operating point of a placed exit (gate 1),
  # so a closing gate does not freeze its threshold (dnas_ee.train.objective).
  c.exits = dict(confidence="max_prob", search_threshold=0.9, learn_thresholds=True,
                 thresholds_as_placed=True,
                 threshold_temperature=schedule("exponential", 0.1, 0.02))
  c.search = dict(
      steps=600, batch_size=64, warmup_steps=150, order="first", unroll_lr=-1.0,
      w_lr=0.05, w_momentum=0.9, w_weight_decay=3e-4, grad_clip=5.0,
      a_lr=3e-3, a_b1=0.5, a_b2=0.999, a_weight_decay=1e-3, gate_lr_scale=1.0,
      op_temperature=schedule("exponential", 1.0, 0.2), mixture_mode="softmax", gate_mode="sigmoid",
      log_every=25, checkpoint_every=100, keep_checkpoints=2,
      backbone="train", feature_copies=2, schedule="joint")
  # search.backbone: 'train' (the joint search: backbone weights and bits searched and
  # trained) or 'frozen' (backbone weights and bits fixed at init.backbone's; only exits,
  # branch ops, branch bits and thresholds are searched, on cached backbone features:
  # feature_copies augmented copies of the training split, dnas_ee.train.feature_cache).
  # search.schedule: 'joint' (exits and bits in one search), 'exits_then_bits' (exits at the
  # backbone's bits, then its bits with those exits pinned) or 'bits_then_exits' (the
  # backbone's bits with no exit, then exits at those bits): each stage runs search.steps
  # (halve them for a joint search's budget); dnas_ee.stages.search.
  # init.backbone: a run dir holding a trained static network (e.g. a method.name=static
  # run); the supernet and every retrained network start from its stem, blocks and head.
  c.init = dict(backbone="")
  # task: the architecture step's task loss; weight_task: the weight step's (no
  # penalty: the weights train as the derived network will be retrained).
  # aux_weight: the priced per-exit terms (each exit's CE + lambda x the penalty of leaving
  # there). penalty 'log' (lambda log(C / C_ref)) prices every relative saving the same
  # wherever the search is; lambda is constant, so it means one thing from the first
  # architecture step on.
  c.loss = dict(task="expected", weight_task="weighted_sum", aux_weight=0.5, exit_weights=(),
                penalty="log",
                lam=schedule("constant", 0.5, 0.5), target=0.5,
                metric_weights=dict(macs=0.0, weight_bytes=0.0, bitops=1.0, latency_s=0.0,
                                    energy_j=0.0))
  # ops: 'priced' (an undecided slot takes the cheapest of its contenders, as the
  # search priced it) or 'argmax'; exits: 'searched', or 'hand_placed' (method.branch_ops
  # after every candidate position at the searched bits: hand_placed at matched bits).
  c.derive = dict(rule="threshold", top_k=1, ops="priced", exits="searched")
  c.retrain = dict(steps=800, batch_size=64, lr=0.05, momentum=0.9, weight_decay=5e-4,
                   exit_weight=1.0, exit_grad_scale=1.0, distill_weight=1.0,
                   distill_temperature=3.0, train_on_val=True,
                   log_every=25, checkpoint_every=100, keep_checkpoints=2)
  # reference: the accuracy floor is max_drop points below the 'static' network trained
  # alone (the honest baseline) or the early-exit network's own 'final_exit'.
  c.calibrate = dict(mode="accuracy_floor", max_drop=0.5, budget=0.5, reference="static")
  c.evaluate = dict(thresholds=(), batch_size=256)
  # objective: what the penalty prices. 'bitops' (MACs x w_bits x a_bits / 64) needs
  # no accelerator and prices bit widths; with an accelerator use 'edp', 'latency'
  # or 'energy' (from its LUT). Plain 'macs' leaves bit widths unpriced.
  c.hw = dict(accelerator="", objective="bitops", lut="")
  c.mesh = dict(multi_host=False)
  # Where genotype.json comes from (dnas_ee/methods): 'dnas' (the search), 'static',
  # 'hand_placed', 'random', 'evolutionary'. random/evolutionary score candidates with a
  # supernet trained by the search stage, its architecture frozen at the uniform init
  # ('uniform') or learned as in dnas ('dnas'); both pick by loss.target.
  # validity_candidates: K of their scored candidates fine-tuned like the picked one, for
  # the supernet's ranking against fine-tuning (Kendall tau, dnas_ee.stages.validity).
  c.method = dict(name="dnas", supernet="uniform", branch_ops=("conv3_s2_x1",), bits=0,
                  evaluations=200, population=20, score_samples=0, validity_candidates=0)
  c.lock()
  return c


def import_file_function(path, name: str, kind: str, home: str):
  """Imports the Python file ``path`` and returns its function ``name`` (config and sweep
  files), with one clear error for a missing file or function."""
  file = Path(path)
  if not file.exists():
    raise ConfigError(f"{kind} file {file} does not exist; {kind}s live in {home}")
  spec = importlib.util.spec_from_file_location(f"dnas_ee_{kind}_{file.stem}", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, name):
    raise ConfigError(f"{kind} file {file} has no {name}() function")
  return getattr(module, name)


def load_config_file(path: str | Path, arg: str | None = None) -> ml_collections.ConfigDict:
  """Imports ``path`` and calls its ``get_config(arg)`` (``path:arg`` also works)."""
  path = str(path)
  if ":" in path and arg is None and not Path(path).exists():
    path, arg = path.rsplit(":", 1)
  get_config = import_file_function(path, "get_config", "config", "experiments/configs/")
  config = get_config(arg) if arg is not None else get_config()
  config.lock()
  return config


def _all_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  keys = []
  for key, value in config.items():
    path = f"{prefix}{key}"
    keys.append(path)
    if isinstance(value, ml_collections.ConfigDict):
      keys.extend(_all_keys(value, path + "."))
  return keys


def _unknown_key_error(config, path: str) -> ConfigError:
  near = difflib.get_close_matches(path, _all_keys(config), n=1, cutoff=0.5)
  hint = f"; did you mean '{near[0]}'?" if near else ""
  return ConfigError(f"unknown config key '{path}'{hint}")


def _parse_value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def set_value(config: ml_collections.ConfigDict, path: str, value) -> None:
  """Sets ``a.b.c`` in a locked config, with a clear error for unknown keys or types."""
  node, parts = config, path.split(".")
  for i, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise _unknown_key_error(config, path)
    if i < len(parts) - 1:
      node = node[part]
  old = node[parts[-1]]
  if isinstance(old, ml_collections.ConfigDict):
    raise ConfigError(f"config key '{path}' is a group; set one of its fields, e.g. "
                      f"'{path}.{next(iter(old.keys()), 'x')}'")
  if isinstance(old, tuple) and isinstance(value, (int, float, str)) and not isinstance(value, bool):
    value = (value,)
  if isinstance(old, tuple) and isinstance(value, list):
    value = tuple(value)
  if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  try:
    node[parts[-1]] = value
  except (TypeError, ValueError) as err:
    raise ConfigError(f"config key '{path}' wants a {type(old).__name__} like {old!r}, "
                      f"got {value!r} ({err})") from None


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
  """Applies ``--config.a.b=value`` strings (values parsed as Python literals)."""
  for item in overrides:
    text = item[2:] if item.startswith("--") else item
    if not text.startswith("config.") or "=" not in text:
      raise ConfigError(f"cannot read override {item!r}; write --config.section.key=value")
    path, value = text[len("config."):].split("=", 1)
    set_value(config, path, _parse_value(value))


def check_keys(config: ml_collections.ConfigDict, reference: ml_collections.ConfigDict | None = None):
  """Errors on keys a config file added that the library does not know."""
  reference = reference or base_config()
  known = set(_all_keys(reference))
  for key in _all_keys(config):
    if key.startswith("backbone.options"):
      continue  # backbone options are checked by the backbone's own signature
    if key not in known:
      raise _unknown_key_error(reference, key)


def save_config(config: ml_collections.ConfigDict, path: str | Path) -> None:
  Path(path).write_text(json.dumps(config.to_dict(), indent=2, default=list))


def config_from_json(path: str | Path) -> ml_collections.ConfigDict:
  """Reads a resolved config written by ``save_config``.

  Keys the library added since the file was written take their defaults; keys
  the library does not know are an error (naming the nearest valid key).
  """
  data = json.loads(Path(path).read_text())
  config = base_config()

  def merge(node: ml_collections.ConfigDict, values: dict, prefix: str):
    for key, value in values.items():
      where = f"{prefix}{key}"
      if key not in node:
        raise _unknown_key_error(config, where)
      if where == "backbone.options":
        with node.unlocked():
          node[key] = ml_collections.ConfigDict(
              {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
      elif isinstance(node[key], ml_collections.ConfigDict):
        merge(node[key], value, where + ".")
      else:
        set_value(config, where, tuple(value) if isinstance(value, list) else value)

  try:
    merge(config, data, "")
  except ConfigError as err:
    raise ConfigError(f"{path}: {err}") from None
  return config
