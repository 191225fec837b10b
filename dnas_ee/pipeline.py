"""The stages of a run, as library functions the CLI and the tests call.

``search -> derive -> retrain -> calibrate -> evaluate`` (``run`` does all five). Each stage
reads its inputs from and writes its artifacts to the work dir, and resumes:
the search and the retraining from their latest checkpoint, the others by
recomputing from the artifacts.

Work-dir layout: ``config.json`` (resolved config), ``search_metrics.jsonl``,
``search_arch.json`` (final architecture logits), ``genotype.json``,
``retrain_{early_exit,static}_metrics.jsonl``, ``checkpoints/``, ``summary.json``.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import NamedTuple

import ml_collections
import numpy as np
from flax import nnx

from dnas_ee.config import check_keys, save_config
from dnas_ee.data import load_dataset
from dnas_ee.data.shapes import dataset_shape
from dnas_ee.exits.decision import first_exit
from dnas_ee.methods.stage import frozen_architecture, trains_supernet
from dnas_ee.models.supernet import Supernet
from dnas_ee.space.genotype import Genotype, derive_genotype
from dnas_ee.stages import shared_training as shared
from dnas_ee.stages.calibrate import calibrate_run
from dnas_ee.stages.evaluate import evaluate_run
from dnas_ee.stages.run_dir import (
    NETWORKS, evaluation_thresholds as _thresholds, exit_logits, exit_table, load_run_config,
    load_trained, network_space as _network_space, train_setup as _train_setup)
from dnas_ee.train import build, loop, parallel, retrain as rt
from dnas_ee.train.search import SearchSetup, init_search_state, jit_search_step, split_model

# Re-exported: the stages' public helpers (``first_exit`` and the run-dir readers
# live in ``dnas_ee.exits.decision`` and ``dnas_ee.stages.run_dir``).
__all__ = [
    "CALIBRATION_MODES", "NETWORKS", "STAGES", "SearchRun", "calibrate", "derive", "evaluate",
    "exit_logits", "exit_table", "first_exit", "load_run_config", "load_trained",
    "network_exit_costs", "prepare_search", "retrain", "run", "search", "search_batches",
]

STAGES = ("search", "derive", "retrain", "calibrate", "evaluate")
CALIBRATION_MODES = ("accuracy_floor", "budget", "none")


def _prepare(config: ml_collections.ConfigDict, workdir) -> Path:
  """Validates the config and saves it; a dir holding another config is refused
  (``dnas_ee.stages.run_config``: run dirs never report another config's results)."""
  from dnas_ee.stages.run_config import prepare_run_dir
  return prepare_run_dir(config, workdir)


@dataclasses.dataclass
class SearchRun:
  """Everything a search loop needs, built from the config (also used by benchmarks)."""
  data: object
  space: object
  setup: SearchSetup
  state: object
  ctx: object
  mesh: object


def prepare_search(config, mesh=None, data=None) -> SearchRun:
  """Builds data, space, step setup, replicated state and cost context from a config."""
  data = data if data is not None else load_dataset(config.data)
  space = build.build_space(config, data.image_shape, data.num_classes)
  source = build.build_cost_source(config, space)
  spec, ctx = build.build_objective(config, space, source)
  mesh = mesh or parallel.make_mesh(config.mesh.multi_host)
  s = config.search
  parallel.check_batch_size(s.batch_size, mesh, "search.batch_size")
  model = Supernet(space, rngs=nnx.Rngs(config.seed), threshold_init=config.exits.search_threshold)
  setup = SearchSetup(
      graphdef=split_model(model)[0], objective=spec,
      w_tx=build.weight_optimizer(s.w_lr, s.w_momentum, s.w_weight_decay, s.steps, s.grad_clip),
      a_tx=build.arch_optimizer(config),
      op_temperature=build.schedule_from(s.op_temperature, s.steps),
      threshold_temperature=build.schedule_from(config.exits.threshold_temperature, s.steps),
      order=s.order, unroll_lr=s.w_lr if s.unroll_lr < 0 else s.unroll_lr,   # DARTS: xi = w_lr
      warmup_steps=s.steps if frozen_architecture(config) else s.warmup_steps,
      augment_pad=config.data.augment_pad, augment_flip=config.data.augment_flip,
      mixture_mode=s.mixture_mode, gate_mode=s.gate_mode)
  state = parallel.replicate(mesh, init_search_state(model, setup, config.seed))
  return SearchRun(data, space, setup, state, parallel.replicate(mesh, ctx), mesh)


def search_batches(run: SearchRun, config, step: int):
  """(train batch, val batch) of a search step: pure functions of the seed and the step."""
  data, s = run.data, config.search
  return (loop.host_batch(run.mesh, data.train.images, data.train.labels, config.seed, step,
                          s.batch_size),
          loop.host_batch(run.mesh, data.val.images, data.val.labels, config.seed + 1, step,
                          s.batch_size))


def search(config, workdir, *, progress: bool = True) -> dict:
  """Searches the architecture; writes ``search_arch.json``. Resumes from checkpoints."""
  return _search_into(config, _prepare(config, workdir), progress)


def _search_into(config, workdir: Path, progress: bool) -> dict:
  run = prepare_search(config)
  step_fn = jit_search_step(run.setup)
  state = loop.fit(
      run.state, lambda state, train, val: step_fn(state, train, val, run.ctx),
      lambda step: search_batches(run, config, step), steps=config.search.steps,
      cadence=loop.Cadence.from_config(config.search),
      checkpoint_dir=workdir / "checkpoints" / "search",
      metrics_path=workdir / "search_metrics.jsonl",
      tensorboard_dir=workdir / "tensorboard" / "search",
      name="search", progress=progress, postfix=dict(loss="loss", cost="cost_ratio"),
      advice="Lower search.w_lr or search.a_lr or loss.lam, or set search.grad_clip.")
  arch = {k: np.asarray(v).tolist() for k, v in _arch_logits(run.setup.graphdef, state).items()}
  if loop.is_primary():
    (workdir / "search_arch.json").write_text(json.dumps(arch, indent=1))
    _write_trajectory(config, run.space, workdir)
  return arch


def _write_trajectory(config, space, workdir: Path) -> None:
  """``search_trajectory.json`` and its plots (``plots/search_*.png``) from the metrics log."""
  from dnas_ee.train.trajectory import plot_trajectory, trajectory_from_metrics
  traj = trajectory_from_metrics(workdir / "search_metrics.jsonl")
  (workdir / "search_trajectory.json").write_text(json.dumps(traj))
  plot_trajectory(traj, workdir / "plots", positions=[b.position for b in space.branches],
                  slot_ops=[b.slot_ops for b in space.branches], bits=space.backbone_bits[0],
                  warmup_steps=config.search.warmup_steps)


def _arch_logits(graphdef, state) -> dict:
  model = nnx.merge(graphdef, state.params, state.arch, state.stats)
  return dict(exit_logits=model.exit_logits[...], op_logits=model.op_logits[...],
              backbone_bit_logits=model.backbone_bit_logits[...],
              branch_bit_logits=model.branch_bit_logits[...], alloc_logits=model.alloc_logits[...],
              exit_thresholds=model.exit_thresholds[...])


def derive(config, workdir) -> Genotype:
  """Derives the discrete genotype from ``search_arch.json``; writes ``genotype.json``.

  Methods other than ``dnas`` produce it their own way (``dnas_ee.methods.stage``)."""
  workdir = Path(workdir)
  if config.method.name != "dnas":
    from dnas_ee.methods.stage import select_genotype
    return select_genotype(config, workdir, prepare_search)
  arch_path = workdir / "search_arch.json"
  if not arch_path.exists():
    raise FileNotFoundError(f"{arch_path} is missing: run `dnas-ee search` on this work dir first")
  arch = json.loads(arch_path.read_text())
  data_shape, num_classes = dataset_shape(config.data)   # no need to load the images
  space = build.build_space(config, data_shape, num_classes)
  genotype = derive_genotype(space, arch["exit_logits"], arch["op_logits"],
                             arch["backbone_bit_logits"], arch["branch_bit_logits"],
                             alloc_logits=arch.get("alloc_logits"), rule=config.derive.rule,
                             top_k=config.derive.top_k, thresholds=arch.get("exit_thresholds"),
                             temperature=float(build.schedule_from(
                                 config.search.op_temperature,
                                 config.search.steps)(config.search.steps)))
  if loop.is_primary():
    genotype.save(workdir / "genotype.json")
  return genotype


def network_exit_costs(config, space, source=None):
  """([E, M] cost of leaving at each exit of a derived network, metric names).

  ``source``: the run's cost source, if the caller already built it (a LUT is then
  loaded once). See ``dnas_ee.cost.network.exit_costs`` (multi-core critical path
  included).
  """
  costs = build.network_costs(config, space, source)
  return costs.cumulative, costs.metrics


def retrain(config, workdir, *, progress: bool = True, networks=NETWORKS,
            shared_dir=None) -> None:
  """Trains the derived early-exit network and the static backbone from scratch (QAT).

  A network whose space equals one already trained here (a ``static`` method's
  network is the static backbone) is copied, not trained again. With ``shared_dir``
  (a sweep's ``shared/``), the static backbone is trained once there per space,
  retraining settings, data and seed, and copied into every run dir that needs it
  (``dnas_ee.stages.shared_training``).
  """
  workdir = Path(workdir)
  genotype = Genotype.load(workdir / "genotype.json")
  static_space = _network_space(genotype, "static")
  steps = int(config.retrain.steps)
  data = None
  trained = []   # the trainings of this call, each a possible source for a later network
  for which in networks:
    space = _network_space(genotype, which)
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
      if not shared.has_final_checkpoint(source.checkpoints, steps):   # else finished earlier
        data = data if data is not None else _retrain_data(config)
        _fit_network(config, data, source, progress)
    if source.checkpoints != checkpoint_dir and not shared.has_final_checkpoint(checkpoint_dir,
                                                                                steps):
      shared.copy_trained(source.checkpoints, source.metrics, checkpoint_dir, metrics_path,
                          steps, dict(source.provenance, copied_from=str(source.checkpoints)))


class _Training(NamedTuple):
  """Where one network's retraining runs (a run dir, or a sweep's shared dir)."""
  space: object
  checkpoints: Path
  metrics: Path
  tensorboard: Path
  name: str
  provenance: dict


def _retrain_data(config):
  data = load_dataset(config.data)
  images, labels = data.train.images, data.train.labels
  if config.retrain.train_on_val:
    images = np.concatenate([images, data.val.images])
    labels = np.concatenate([labels, data.val.labels])
  return images, labels


def _fit_network(config, data, training: _Training, progress):
  images, labels = data
  mesh = parallel.make_mesh(config.mesh.multi_host)
  r = config.retrain
  parallel.check_batch_size(r.batch_size, mesh, "retrain.batch_size")
  setup, state = _train_setup(config, training.space, config.seed)
  loop.fit(
      parallel.replicate(mesh, state), rt.jit_train_step(setup),
      lambda step: (loop.host_batch(mesh, images, labels, config.seed + 2, step, r.batch_size),),
      steps=r.steps, cadence=loop.Cadence.from_config(r), checkpoint_dir=training.checkpoints,
      metrics_path=training.metrics, tensorboard_dir=training.tensorboard, name=training.name,
      progress=progress, postfix=dict(loss="loss"), advice="Lower retrain.lr.")


def evaluate(config, workdir, *, latency_samples: int = 50, report: bool = True) -> dict:
  """Test-split evaluation of both networks; writes ``summary.json``, ``report.md``, plots.

  Accuracy, exit rates, dead exits and expected costs (MACs; latency, energy and
  EDP from the LUT) of the early-exit network (calibrated thresholds when
  ``thresholds.json`` exists) and the static backbone, measured single-sample
  wall-clock latency of both (``latency_samples`` test samples; 0 skips it), and
  the report. See ``dnas_ee.stages.evaluate``.

  Raises:
    FileNotFoundError: a file the evaluation needs is missing (named).
  """
  return evaluate_run(config, workdir, latency_samples=latency_samples, report=report)


def calibrate(config, workdir):
  """Per-exit thresholds on the calibration split (``config.calibrate``); 'none' keeps the
  configured ones."""
  c = config.calibrate
  if c.mode not in CALIBRATION_MODES:
    raise ValueError(f"unknown calibrate.mode {c.mode!r}; use one of {CALIBRATION_MODES}")
  if c.mode == "none" or not Genotype.load(Path(workdir) / "genotype.json").exits:
    if c.mode != "none":
      print("calibrate: the derived network has no early exit; nothing to calibrate")
    (Path(workdir) / "thresholds.json").unlink(missing_ok=True)
    return None
  return calibrate_run(workdir, mode=c.mode, max_drop=c.max_drop, budget=c.budget,
                       reference=c.reference)


def run(config, workdir, *, progress: bool = True, stages=STAGES,
        shared_dir=None) -> dict | None:
  """All stages in order (search, derive, retrain, calibrate, evaluate); each resumes
  from what the work dir already holds. ``shared_dir``: see ``retrain``."""
  summary, timing_path = None, Path(workdir) / "timing.json"
  for stage in stages:
    t0 = time.time()
    if stage == "search":
      if trains_supernet(config) and not (Path(workdir) / "search_arch.json").exists():
        if shared_dir is None:
          before = _searched_seconds(workdir)   # a resumed search counts its earlier runs
          search(config, workdir, progress=progress)
          _record_time(timing_path, "search_s", before + time.time() - t0)
        else:
          _record_time(timing_path, "search_s", _shared_search(config, workdir, shared_dir,
                                                               progress))
      else:
        _prepare(config, workdir)
    elif stage == "derive":
      fresh = not (Path(workdir) / "genotype.json").exists()
      derive(config, workdir)
      if fresh:
        _record_time(timing_path, "derive_s", time.time() - t0)
    elif stage == "retrain":
      retrain(config, workdir, progress=progress, shared_dir=shared_dir)
    elif stage == "calibrate":
      calibrate(config, workdir)
    elif stage == "evaluate":
      summary = _with_timing(evaluate(config, workdir), workdir, timing_path)
    elif stage == "inherited":
      summary = evaluate_inherited(config, workdir)
    else:
      raise ValueError(f"unknown stage {stage!r}; use one of {STAGES + ('inherited',)}")
  return summary


def evaluate_inherited(config, workdir, *, split: str = "test") -> dict:
  """The derived architecture inside the trained supernet, and the static reference
  (``dnas_ee.stages.inherited``); writes ``inherited.json``. A one-shot estimate:
  one search per point of a lambda sweep, no retraining."""
  from dnas_ee.checkpoint import Checkpointer
  from dnas_ee.stages.inherited import inherited_evaluation, searched_metric
  workdir = Path(workdir)
  run = prepare_search(config)
  ckpt = Checkpointer(workdir / "checkpoints" / "search")
  if ckpt.latest_step() != config.search.steps:
    raise FileNotFoundError(f"no final search checkpoint (step {config.search.steps}) in "
                            f"{workdir / 'checkpoints' / 'search'}: run `dnas-ee search` first")
  state = ckpt.restore(run.state)
  ckpt.close()
  model = nnx.merge(run.setup.graphdef, state.params, state.arch, state.stats)
  part = getattr(run.data, split)
  result = inherited_evaluation(model, run.setup.objective, run.ctx, part.images, part.labels)
  objective, weights = config.hw.objective, config.loss.metric_weights.to_dict()
  for which in ("derived", "static"):
    result[which]["searched_metric"] = searched_metric(result[which], objective, weights)
  result.update(objective=objective, split=split, lam=config.loss.lam.to_dict(),
                searched_ratio=result["derived"]["searched_metric"]
                / result["static"]["searched_metric"],
                genotype=json.loads((workdir / "genotype.json").read_text())
                if (workdir / "genotype.json").exists() else None)
  if loop.is_primary():
    (workdir / "inherited.json").write_text(json.dumps(result, indent=1))
  return result


def _shared_search(config, workdir, shared_dir, progress: bool) -> float:
  """Runs (or finds) the search of ``config`` in ``shared_dir`` and copies it into
  ``workdir``; returns its wall-clock (``dnas_ee.stages.shared_training``)."""
  _prepare(config, workdir)
  home = shared.shared_dir_for(shared_dir, shared.search_inputs(config))
  timing = home / "timing.json"
  if not (home / "search_arch.json").exists():
    t0, before = time.time(), _searched_seconds(home)
    _search_into(config, home, progress)
    _record_time(timing, "search_s", before + time.time() - t0)
  shared.copy_search(home, workdir, config.search.steps)
  return json.loads(timing.read_text())["search_s"]


def _searched_seconds(workdir) -> float:
  """Search wall-clock already spent in ``workdir`` up to its latest checkpoint (0.0 fresh)."""
  steps = sorted(int(p.name) for p in (Path(workdir) / "checkpoints" / "search").glob("[0-9]*"))
  return loop.logged_seconds(Path(workdir) / "search_metrics.jsonl", steps[-1]) if steps else 0.0


def _record_time(path: Path, key: str, seconds: float) -> None:
  times = json.loads(path.read_text()) if path.exists() else {}
  times[key] = round(seconds, 3)
  path.write_text(json.dumps(times))


def _with_timing(summary: dict, workdir, timing_path: Path) -> dict:
  """Adds ``search_s``, the method's search wall-clock (supernet training + selection;
  0 for static and hand_placed), to ``summary.json``."""
  times = json.loads(timing_path.read_text()) if timing_path.exists() else {}
  summary["timing"] = times
  summary["search_s"] = round(times.get("search_s", 0.0) + times.get("derive_s", 0.0), 3)
  (Path(workdir) / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
  return summary
