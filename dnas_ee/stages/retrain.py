"""The retrain stage: the derived early-exit network and the static backbone (QAT).

From scratch, or fine-tuned from ``init.backbone`` (both networks start from its stem,
blocks and head; ``retrain.*`` is then the fine-tuning budget). With a frozen backbone
(``search.backbone='frozen'``) the static network *is* the trained backbone (saved as
it is, no step taken) and the early-exit network trains its exit branches only, on the
cached backbone features of the training split (``dnas_ee.train.feature_cache``: the
features do not change, so the backbone never runs; ``retrain.train_on_val`` does not
apply), so its final exit is exactly the static network's.

A network whose space equals one already trained here (a ``static`` method's network
is the static backbone) is copied, not trained again. With ``shared_dir`` (a sweep's
``shared/``), the static backbone is trained once there per space, retraining settings,
data, seed and initial backbone, and copied into every run dir that needs it
(``dnas_ee.stages.shared_training``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import json

import numpy as np

from dnas_ee.checkpoint import Checkpointer
from dnas_ee.data import load_dataset
from dnas_ee.data.shapes import dataset_shape
from dnas_ee.space.genotype import Genotype
from dnas_ee.stages import shared_training as shared
from dnas_ee.stages.run_dir import NETWORKS, network_space, train_setup
from dnas_ee.train import build, loop, parallel, retrain as rt
from dnas_ee.train.feature_cache import feature_cache
from dnas_ee.train.setup import load_init_backbone


class _Training(NamedTuple):
  """Where one network's retraining runs (a run dir, or a sweep's shared dir)."""
  space: object
  checkpoints: Path
  metrics: Path
  tensorboard: Path
  name: str
  provenance: dict


def retrain(config, workdir, *, progress: bool = True, networks=NETWORKS,
            shared_dir=None) -> None:
  """Trains the derived early-exit network and the static backbone with QAT; resumes
  from their checkpoints (``checkpoints/retrain_{early_exit,static}``)."""
  workdir = Path(workdir)
  genotype = Genotype.load(workdir / "genotype.json")
  static_space = network_space(genotype, "static")
  steps = int(config.retrain.steps)
  frozen = build.frozen_network(config)
  backbone = load_init_backbone(config)
  data = None
  trained = []   # the trainings of this call, each a possible source for a later network
  for which in networks:
    space = network_space(genotype, which)
    checkpoint_dir = workdir / "checkpoints" / f"retrain_{which}"
    metrics_path = workdir / f"retrain_{which}_metrics.jsonl"
    source = next((t for t in trained if t.space == space), None)
    if source is None:
      if shared_dir is not None and space == static_space:
        inputs = shared.training_inputs(config, space)
        home = shared.shared_dir_for(shared_dir, inputs)
        source = _Training(space, home / "checkpoints", home / "metrics.jsonl",
                           home / "tensorboard", f"retrain {which} (shared)",
                           dict(shared_dir=str(home), key=shared.training_key(inputs)))
      else:
        source = _Training(space, checkpoint_dir, metrics_path,
                           workdir / "tensorboard" / f"retrain_{which}", f"retrain {which}",
                           dict(same_as=which))
      trained.append(source)
      if shared.has_final_checkpoint(source.checkpoints, steps):   # finished earlier
        pass
      elif frozen and space == static_space:
        _save_backbone(config, source, backbone, steps)
      elif frozen:
        _fit_branches(config, genotype, source, backbone, progress)
      else:
        data = data if data is not None else _retrain_data(config)
        _fit_network(config, data, source, backbone, progress)
    if source.checkpoints != checkpoint_dir and not shared.has_final_checkpoint(checkpoint_dir,
                                                                                steps):
      shared.copy_trained(source.checkpoints, source.metrics, checkpoint_dir, metrics_path,
                          steps, dict(source.provenance, copied_from=str(source.checkpoints)))


def _retrain_data(config):
  data = load_dataset(config.data)
  images, labels = data.train.images, data.train.labels
  if config.retrain.train_on_val:
    images = np.concatenate([images, data.val.images])
    labels = np.concatenate([labels, data.val.labels])
  return images, labels


def _fit_network(config, data, training: _Training, backbone, progress):
  images, labels = data
  mesh = parallel.make_mesh(config.mesh.multi_host)
  r = config.retrain
  parallel.check_batch_size(r.batch_size, mesh, "retrain.batch_size")
  setup, state = train_setup(config, training.space, config.seed, backbone)
  loop.fit(
      parallel.replicate(mesh, state), rt.jit_train_step(setup),
      lambda step: (loop.host_batch(mesh, images, labels, config.seed + 2, step, r.batch_size),),
      steps=r.steps, cadence=loop.Cadence.from_config(r), checkpoint_dir=training.checkpoints,
      metrics_path=training.metrics, tensorboard_dir=training.tensorboard, name=training.name,
      progress=progress, postfix=dict(loss="loss"), advice="Lower retrain.lr.")


def _save_backbone(config, training: _Training, backbone, steps: int) -> None:
  """The static network of a frozen backbone: the trained backbone itself, saved as the
  final retraining checkpoint (no step taken; the metrics log says so)."""
  _, state = train_setup(config, training.space, config.seed, backbone)
  if loop.is_primary():
    ckpt = Checkpointer(training.checkpoints)
    ckpt.save(steps, dataclasses.replace(state, step=state.step + steps))
    ckpt.wait()
    ckpt.close()
    training.metrics.write_text(json.dumps(dict(step=steps, time_s=0.0, frozen_backbone=True,
                                                source=backbone.source)) + "\n")


def _fit_branches(config, genotype, training: _Training, backbone, progress) -> None:
  """The early-exit network's branches on the frozen backbone's cached features."""
  data = load_dataset(config.data)
  search_space = build.build_space(config, *dataset_shape(config.data))
  static = Genotype.load(Path(backbone.source) / "genotype.json").static
  cache = feature_cache(backbone, static, search_space, data, config.data,
                        copies=config.search.feature_copies,
                        augment=(config.data.augment_pad, config.data.augment_flip),
                        seed=config.data.seed)
  kept = [cache.positions.index(e.position) for e in genotype.exits]
  mesh = parallel.make_mesh(config.mesh.multi_host)
  r = config.retrain
  parallel.check_batch_size(r.batch_size, mesh, "retrain.batch_size")
  setup, state = train_setup(config, training.space, config.seed, backbone)
  setup = dataclasses.replace(setup, frozen_backbone=True)

  def batches(step):
    features, logits, labels = cache.train.batch(mesh, config.seed + 2, step, r.batch_size)
    return (((tuple(features[i] for i in kept), logits), labels),)

  loop.fit(
      parallel.replicate(mesh, state), rt.jit_train_step(setup), batches,
      steps=r.steps, cadence=loop.Cadence.from_config(r), checkpoint_dir=training.checkpoints,
      metrics_path=training.metrics, tensorboard_dir=training.tensorboard, name=training.name,
      progress=progress, postfix=dict(loss="loss"), advice="Lower retrain.lr.")
