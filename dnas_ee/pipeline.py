"""The stages of a run, as library functions the CLI and the tests call.

``search -> derive -> retrain -> evaluate`` (``run`` does all four). Each stage
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

import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from dnas_ee.checkpoint import Checkpointer
from dnas_ee.config import check_keys, config_from_json, save_config
from dnas_ee.cost.discrete import discrete_exit_costs, discrete_unit_costs
from dnas_ee.data import load_dataset
from dnas_ee.data.shapes import dataset_shape
from dnas_ee.models.supernet import Supernet
from dnas_ee.space.genotype import Genotype, derive_genotype, genotype_space
from dnas_ee.train import build, loop, parallel, retrain as rt
from dnas_ee.train.search import SearchSetup, init_search_state, jit_search_step, split_model

STAGES = ("search", "derive", "retrain", "calibrate", "evaluate")
CALIBRATION_MODES = ("accuracy_floor", "budget", "none")
NETWORKS = ("early_exit", "static")


def _prepare(config: ml_collections.ConfigDict, workdir) -> Path:
  check_keys(config)
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  saved = workdir / "config.json"
  if saved.exists():
    old = json.loads(saved.read_text())
    new = json.loads(json.dumps(config.to_dict(), default=list))
    if old != new:
      changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
      print(f"note: config differs from {saved} in sections {changed}; the new one is saved")
  save_config(config, saved)
  return workdir


def load_run_config(workdir) -> ml_collections.ConfigDict:
  path = Path(workdir) / "config.json"
  if not path.exists():
    raise FileNotFoundError(f"{path} is missing: run `dnas-ee search --config ... --workdir {workdir}` first")
  return config_from_json(path)


def _progress(total: int, initial: int, desc: str, enabled: bool):
  return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True,
              leave=False)


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
  model = Supernet(space, rngs=nnx.Rngs(config.seed))
  setup = SearchSetup(
      graphdef=split_model(model)[0], objective=spec,
      w_tx=build.weight_optimizer(s.w_lr, s.w_momentum, s.w_weight_decay, s.steps, s.grad_clip),
      a_tx=build.arch_optimizer(config),
      op_temperature=build.schedule_from(s.op_temperature, s.steps),
      threshold_temperature=build.schedule_from(config.exits.threshold_temperature, s.steps),
      order=s.order, unroll_lr=s.unroll_lr, warmup_steps=s.warmup_steps,
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
  workdir = _prepare(config, workdir)
  run = prepare_search(config)
  s, setup, state, ctx = config.search, run.setup, run.state, run.ctx
  graphdef = setup.graphdef
  ckpt_dir = workdir / "checkpoints" / "search"
  ckpt = Checkpointer(ckpt_dir, max_to_keep=s.keep_checkpoints)
  start = ckpt.latest_step() or 0
  if start:
    state = ckpt.restore(state, start)
  log = loop.MetricsLog(workdir / "search_metrics.jsonl", start)
  step_fn = jit_search_step(setup)
  bar = _progress(s.steps, start, "search", progress)
  t0, last_saved = time.time(), (start or None)
  advice = "Lower search.w_lr or search.a_lr or loss.lam, or set search.grad_clip."
  for step in range(start, s.steps):
    train_batch, val_batch = search_batches(run, config, step)
    state, metrics = step_fn(state, train_batch, val_batch, ctx)
    done = step + 1
    if done % s.log_every == 0 or done == s.steps:
      loop.check_finite(state.nonfinite_step, "search", ckpt_dir, last_saved, advice)
      record = dict(step=done, time_s=round(time.time() - t0, 3), **loop.to_python(metrics))
      log.write(record)
      bar.set_postfix(loss=f"{record['loss']:.3f}", cost=f"{record['cost_ratio']:.2f}")
    if done % s.checkpoint_every == 0 or done == s.steps:
      loop.check_finite(state.nonfinite_step, "search", ckpt_dir, last_saved, advice)
      ckpt.save(done, state)
      last_saved = done
    bar.update(1)
  bar.close()
  ckpt.close()
  arch = {k: np.asarray(v).tolist() for k, v in _arch_logits(graphdef, state).items()}
  (workdir / "search_arch.json").write_text(json.dumps(arch, indent=1))
  return arch


def _arch_logits(graphdef, state) -> dict:
  model = nnx.merge(graphdef, state.params, state.arch, state.stats)
  return dict(exit_logits=model.exit_logits[...], op_logits=model.op_logits[...],
              backbone_bit_logits=model.backbone_bit_logits[...],
              branch_bit_logits=model.branch_bit_logits[...], alloc_logits=model.alloc_logits[...])


def derive(config, workdir) -> Genotype:
  """Derives the discrete genotype from ``search_arch.json``; writes ``genotype.json``."""
  workdir = Path(workdir)
  arch_path = workdir / "search_arch.json"
  if not arch_path.exists():
    raise FileNotFoundError(f"{arch_path} is missing: run `dnas-ee search` on this work dir first")
  arch = json.loads(arch_path.read_text())
  data_shape, num_classes = dataset_shape(config.data)   # no need to load the images
  space = build.build_space(config, data_shape, num_classes)
  genotype = derive_genotype(space, arch["exit_logits"], arch["op_logits"],
                             arch["backbone_bit_logits"], arch["branch_bit_logits"],
                             alloc_logits=arch.get("alloc_logits"), rule=config.derive.rule,
                             top_k=config.derive.top_k)
  genotype.save(workdir / "genotype.json")
  return genotype


def network_exit_costs(config, space, source=None):
  """([E, M] cost of leaving at each exit of a derived network, metric names).

  ``source``: the run's cost source, if the caller already built it (a LUT is then
  loaded once); it is built from the config otherwise.

  On a multi-core accelerator the latency of exit j is the critical path of the
  discrete schedule (branches placed on another core overlap the backbone) and
  the energy includes the feature-map transfers of those branches.
  """
  source = source or build.build_cost_source(config, space)
  costs = discrete_exit_costs(space, source)
  acc = build.multicore_accelerator(config)
  if acc is not None and space.branches:
    from dnas_ee.cost.multicore import discrete_schedule_latency
    from dnas_ee.hw import transfer_tables
    lat, en = source.metrics.index("latency_s"), source.metrics.index("energy_j")
    blocks, branches = discrete_unit_costs(space, source)
    t_lat, t_en = transfer_tables(space, acc)
    flags, kept = space.parallel_flags, [b.position for b in space.branches]
    for j in range(space.num_exits):
      costs[j, lat] = discrete_schedule_latency(blocks[:, lat], branches[:, lat], t_lat[:, 0], kept,
                                                flags, j)
      costs[j, en] += sum(t_en[i, 0] for i in range(min(j + 1, len(kept))) if flags[i])
  return costs, source.metrics


def _network_space(genotype: Genotype, which: str):
  return genotype_space(genotype if which == "early_exit" else genotype.static)


def _train_setup(config, space, seed: int):
  r = config.retrain
  model = Supernet(space, rngs=nnx.Rngs(seed), branch_grad_scale=r.exit_grad_scale)
  tx = build.weight_optimizer(r.lr, r.momentum, r.weight_decay, r.steps, config.search.grad_clip)
  graphdef, arch, state = rt.init_train_state(model, tx, seed)
  weights = (r.exit_weight,) * len(space.branches) + (1.0,)
  setup = rt.TrainSetup(graphdef, arch, tx, weights, r.distill_weight, r.distill_temperature,
                        config.data.augment_pad, config.data.augment_flip)
  return setup, state


def retrain(config, workdir, *, progress: bool = True, networks=NETWORKS) -> None:
  """Trains the derived early-exit network and the static backbone from scratch (QAT)."""
  workdir = Path(workdir)
  genotype = Genotype.load(workdir / "genotype.json")
  data = load_dataset(config.data)
  images, labels = data.train.images, data.train.labels
  if config.retrain.train_on_val:
    images = np.concatenate([images, data.val.images])
    labels = np.concatenate([labels, data.val.labels])
  mesh = parallel.make_mesh(config.mesh.multi_host)
  r = config.retrain
  parallel.check_batch_size(r.batch_size, mesh, "retrain.batch_size")
  for which in networks:
    setup, state = _train_setup(config, _network_space(genotype, which), config.seed)
    state = parallel.replicate(mesh, state)
    ckpt_dir = workdir / "checkpoints" / f"retrain_{which}"
    ckpt = Checkpointer(ckpt_dir, max_to_keep=config.search.keep_checkpoints)
    start = ckpt.latest_step() or 0
    if start:
      state = ckpt.restore(state, start)
    log = loop.MetricsLog(workdir / f"retrain_{which}_metrics.jsonl", start)
    step_fn = rt.jit_train_step(setup)
    bar = _progress(r.steps, start, f"retrain {which}", progress)
    last_saved = start or None
    for step in range(start, r.steps):
      batch = loop.host_batch(mesh, images, labels, config.seed + 2, step, r.batch_size)
      state, metrics = step_fn(state, batch)
      done = step + 1
      if done % config.search.log_every == 0 or done == r.steps:
        loop.check_finite(state.nonfinite_step, f"retrain {which}", ckpt_dir, last_saved,
                          "Lower retrain.lr.")
        record = dict(step=done, **loop.to_python(metrics))
        log.write(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}")
      if done % config.search.checkpoint_every == 0 or done == r.steps:
        loop.check_finite(state.nonfinite_step, f"retrain {which}", ckpt_dir, last_saved,
                          "Lower retrain.lr.")
        ckpt.save(done, state)
        last_saved = done
      bar.update(1)
    bar.close()
    ckpt.close()


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
  space = _network_space(genotype, which)
  setup, state = _train_setup(config, space, config.seed)
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
  from dnas_ee.exits.confidence import host_confidence
  logits = np.asarray(logits)
  conf = host_confidence(np.moveaxis(logits, 0, 1), measure)      # [N, E]
  correct = (logits.argmax(-1) == labels[None, :]).T
  return conf, correct


def first_exit(conf: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
  """Index of the first exit whose confidence reaches its threshold (final always)."""
  thresholds = np.asarray(thresholds, np.float64)
  fires = conf[:, :-1] >= thresholds[None, :]
  fires = np.concatenate([fires, np.ones((conf.shape[0], 1), bool)], axis=1)
  return fires.argmax(axis=1)


def evaluate(config, workdir, *, latency_samples: int = 50, report: bool = True) -> dict:
  """Test-split evaluation of both networks; writes ``summary.json``, ``report.md``, plots.

  Accuracy, exit rates, dead exits and expected costs (MACs; latency, energy and
  EDP from the LUT) of the early-exit network (calibrated thresholds when
  ``thresholds.json`` exists) and the static backbone, measured single-sample
  wall-clock latency of both (``latency_samples`` test samples; 0 skips it), and
  the report. See ``dnas_ee.exits.evaluation``.

  Raises:
    FileNotFoundError: a file the evaluation needs is missing (named).
  """
  from dnas_ee.exits.evaluation import evaluate_run
  return evaluate_run(config, workdir, latency_samples=latency_samples, report=report)


def _thresholds(config, workdir: Path, num_early: int, *, with_source: bool = False):
  """Early-exit thresholds of the evaluation: ``thresholds.json`` (calibrated), else
  ``evaluate.thresholds``, else ``exits.search_threshold`` for every exit.

  Returns:
    ``[num_early]`` float64 thresholds (``+inf`` disables an exit), and where they
    came from when ``with_source``.
  """
  from dnas_ee.exits.calibrate import thresholds_from_json
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
  from dnas_ee.exits.run_calibration import calibrate_run
  return calibrate_run(workdir, mode=c.mode, max_drop=c.max_drop, budget=c.budget)


def run(config, workdir, *, progress: bool = True, stages=STAGES) -> dict | None:
  """All stages in order (search, derive, retrain, calibrate, evaluate); each resumes
  from what the work dir already holds."""
  summary = None
  for stage in stages:
    if stage == "search":
      if not (Path(workdir) / "search_arch.json").exists():
        search(config, workdir, progress=progress)
      else:
        _prepare(config, workdir)
    elif stage == "derive":
      derive(config, workdir)
    elif stage == "retrain":
      retrain(config, workdir, progress=progress)
    elif stage == "calibrate":
      calibrate(config, workdir)
    elif stage == "evaluate":
      summary = evaluate(config, workdir)
  return summary
