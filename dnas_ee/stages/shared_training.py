"""Trainings shared between run dirs: the static backbone retrained once per seed, a
search run once per search config.

Every member of a sweep retrains the static backbone as its reference (the cost and
accuracy-floor reference), and a ``static`` member retrains it a second time as its
own "early-exit" network (which has no exit). With the same space, retraining
settings, data and seed these trainings are the same program on the same batches,
so a sweep trains each one once, in ``<sweep workdir>/shared/<key>/``, and copies the
final checkpoint into every run dir that needs it (a run dir stays complete on its
own). On CIFAR-10 this is ~35% of a campaign's compute.

The key hashes everything retraining reads (``pipeline.retrain`` and
``run_dir.train_setup``): the network's space, ``config.retrain``, ``config.data``,
``config.seed`` and ``config.search.grad_clip``; a shared dir whose recorded
inputs differ from the hashed ones is refused, never reused. Each run dir records
where its copy came from in ``retrain_<network>_source.json``.

Likewise a search: members that differ only in keys read after the search (the
retraining, calibration, derive rule: an ablation of retraining remedies) and the
``random`` and ``evolutionary`` members of one seed (the same supernet, trained with
its architecture frozen) run one search, in ``shared/search-<key>/``, whose final
checkpoint, logs, ``search_arch.json`` and plots are copied into each run dir
(``search_source.json`` says from where). Each member's ``search_s`` is the shared
search's whole wall-clock: what the member's method costs on its own.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

RECORD = "inputs.json"
FORMAT = 1
# What a search writes besides its checkpoints (copied into each member's run dir).
SEARCH_FILES = ("search_arch.json", "search_metrics.jsonl", "search_trajectory.json",
                "plots/search_*.png")


def training_inputs(config, space) -> dict:
  """What the retraining of ``space`` under ``config`` depends on (JSON-able)."""
  inputs = dict(format=FORMAT, space=dataclasses.asdict(space),
                retrain=config.retrain.to_dict(), data=config.data.to_dict(),
                seed=int(config.seed), grad_clip=config.search.grad_clip)
  if config.init.backbone:   # only then: the keys of trainings from scratch stay as they were
    from dnas_ee.train.build import frozen_network
    inputs.update(init=config.init.to_dict(),
                  backbone_mode="frozen" if frozen_network(config) else "train")
  return inputs


def search_inputs(config) -> dict:
  """What the search stage depends on: every key whose change would rerun it; the
  scored methods' (``random``, ``evolutionary``) names are one, as their search is the
  same frozen-architecture supernet training."""
  from dnas_ee.train.setup import frozen_architecture
  from dnas_ee.stages.run_config import keys_first_affecting
  keys = keys_first_affecting(config, "search")
  if frozen_architecture(config):
    keys["method.name"] = "scored: supernet trained with a frozen uniform architecture"
  return dict(format=FORMAT, kind="search", config=keys)


def copy_search(home: Path, workdir: Path, steps: int) -> None:
  """Copies a finished shared search (final checkpoint, logs, architecture, plots) into
  ``workdir`` and writes ``search_source.json``."""
  home, workdir = Path(home), Path(workdir)
  if not (has_final_checkpoint(home / "checkpoints" / "search", steps)
          and (home / "search_arch.json").exists()):
    raise FileNotFoundError(f"{home} holds no finished search (step {steps}): rerun the sweep")
  copy_final_step(home / "checkpoints" / "search", workdir / "checkpoints" / "search", steps)
  for pattern in SEARCH_FILES:
    for path in home.glob(pattern):
      (workdir / path.relative_to(home)).parent.mkdir(parents=True, exist_ok=True)
      shutil.copyfile(path, workdir / path.relative_to(home))
  (workdir / "search_source.json").write_text(json.dumps(dict(shared_dir=str(home)), indent=1))


def training_key(inputs: dict) -> str:
  text = json.dumps(inputs, sort_keys=True, default=repr)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def shared_dir_for(shared_root, inputs: dict) -> Path:
  """``shared_root/<kind>-<key>``, created with its ``inputs.json``; an existing dir
  must hold the same inputs.

  Raises:
    ValueError: the dir records other inputs (a hash collision or a hand edit).
  """
  path = Path(shared_root) / f"{inputs.get('kind', 'retrain')}-{training_key(inputs)}"
  record = path / RECORD
  normalized = json.loads(json.dumps(inputs, sort_keys=True, default=repr))
  if record.exists():
    if json.loads(record.read_text()) != normalized:
      raise ValueError(f"{record} records other training inputs than this run's; delete {path} "
                       "to retrain it")
  else:
    path.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(normalized, indent=1, sort_keys=True))
  return path


def has_final_checkpoint(checkpoint_dir: Path, steps: int) -> bool:
  return (Path(checkpoint_dir) / str(int(steps))).is_dir()


def copy_final_step(source_checkpoints, checkpoint_dir, steps: int) -> None:
  """Replaces ``checkpoint_dir`` (a partial run of the same training, if any) with the
  final checkpoint (step ``steps``) of ``source_checkpoints``."""
  checkpoint_dir = Path(checkpoint_dir)
  if checkpoint_dir.exists():
    shutil.rmtree(checkpoint_dir)
  checkpoint_dir.mkdir(parents=True)
  shutil.copytree(Path(source_checkpoints) / str(int(steps)), checkpoint_dir / str(int(steps)))


def copy_trained(source_checkpoints: Path, source_metrics: Path, checkpoint_dir: Path,
                 metrics_path: Path, steps: int, provenance: dict) -> None:
  """Copies the final checkpoint (step ``steps``) and the metrics log of a finished
  training into a run dir, replacing any partial training of the same network there,
  and writes ``provenance`` beside the metrics as ``<metrics stem>_source.json``."""
  if not has_final_checkpoint(source_checkpoints, steps):
    raise FileNotFoundError(f"{Path(source_checkpoints) / str(int(steps))} is missing: the "
                            "shared training did not finish")
  copy_final_step(source_checkpoints, checkpoint_dir, steps)
  if Path(source_metrics).exists():
    shutil.copyfile(source_metrics, metrics_path)
  source_file = Path(metrics_path).with_name(Path(metrics_path).stem.removesuffix("_metrics")
                                             + "_source.json")
  source_file.write_text(json.dumps(provenance, indent=1))
