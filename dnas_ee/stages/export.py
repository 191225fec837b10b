"""``dnas-ee export`` and ``dnas-ee infer``: a run dir to integer LiteRT segments and back.

``export_run`` reads the run dir alone (config, genotype, the early-exit network's
final retraining checkpoint, ``thresholds.json``), calibrates the ranges of the
tensors the fake-quantized network keeps in float on the calibration split, writes
one ``segment_<k>.tflite`` per active exit and ``manifest.json``, and stores the
JAX evaluation of the test split (``jax_reference.npz``) that ``infer`` compares to.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from dnas_ee.export.extra import require_extra
from dnas_ee.export import graph

DEFAULT_SUBDIR = "export"


def _segment_entries(model, plans, thresholds, ranges) -> list[dict]:
  entries = []
  for k, plan in enumerate(plans):
    entries.append(dict(
        file=f"segment_{k}.tflite", exit=plan.exit, final=plan.final,
        blocks=[plan.start, plan.stop],
        threshold=None if plan.final else float(thresholds[plan.exit]),
        input="image" if k == 0 else graph.feature_key(plans[k - 1]),
        hands_over=None if plan.final else graph.feature_key(plan)))
  return entries


def _layer_table(model) -> list[dict]:
  rows = []
  for name, layer, bn, bits in graph.weight_layers(model):
    q = getattr(layer, "in_quant", None)
    act = None
    if q is not None:
      spec = graph.quant_spec(float(q.clip[...]), bits, q.signed)
      act = dict(bits=bits, signed=spec.signed, clip=spec.clip, scale=spec.scale)
    # The int8 weights are the b-bit integers times this (graph.FoldedConv.carrier_multiplier).
    multiplier = graph.fold_conv(layer, bn, bits).carrier_multiplier
    rows.append(dict(name=name, weight_bits=bits, shape=list(layer.kernel[...].shape),
                     int8_weight_multiplier=multiplier, input_quantizer=act))
  return rows


def export_network(model, thresholds, measure: str, calib_images, out, *,
                   extra_manifest: dict | None = None) -> dict:
  """Exports a derived network's cascade to ``out``; returns the manifest.

  Args:
    model: the derived network module (``graph.merged_model``).
    thresholds: ``[E-1]`` early-exit thresholds (``+inf``: the exit is not exported).
    measure: the confidence measure of the thresholds.
    calib_images: normalized images the observed tensors' ranges are calibrated on.
    out: the export dir (created).
    extra_manifest: more manifest fields (normalization, costs, provenance).
  """
  from dnas_ee.exits.decision import check_thresholds
  from dnas_ee.exits.executor import plan_segments
  litert = require_extra("dnas_ee.export.litert")
  require_extra("ai_edge_litert.interpreter")
  graph.check_model(model)
  out = Path(out)
  out.mkdir(parents=True, exist_ok=True)
  space = model.space
  tau = check_thresholds(thresholds, len(space.branches))
  plans = plan_segments(space, tau)
  calibrated, consumers = graph.calibrate(model, plans, calib_images)
  ranges = graph.export_ranges(calibrated, consumers)
  spec = space.backbone
  stem_q = graph.quant_spec(float(model.stem.conv.in_quant.clip[...]), space.edge_bits,
                            model.stem.conv.in_quant.signed)
  shapes, x = [], np.zeros((1,) + tuple(spec.image_shape), np.float32)
  for plan in plans:
    shapes.append(x.shape[1:])
    x, _ = graph.forward_segment(graph.JaxOps(), model, plan, x)
  for k, plan in enumerate(plans):
    in_range = (graph.carrier_range(stem_q) if k == 0 else
                ranges[graph.feature_key(plans[k - 1])])
    flat = litert.convert_segment(model, plan, ranges, shapes[k], in_range)
    (out / f"segment_{k}.tflite").write_bytes(flat)
  manifest = dict(
      format="dnas-ee LiteRT early-exit cascade", version=1,
      input=dict(shape=list(spec.image_shape), dtype="int8", scale=stem_q.scale,
                 zero_point=stem_q.zero_point,
                 note="normalize the image ((x - mean) / std in [0, 1] pixel units), then "
                      "quantize: q = clamp(round(x / scale) + zero_point, -128, 127), in "
                      "float32, ties to even"),
      num_classes=int(spec.num_classes), confidence=measure,
      thresholds=[None if t == np.inf else float(t) for t in tau[:len(space.branches)]],
      decision="leave at the first exported exit whose confidence(dequantized logits) "
               ">= its threshold; the last segment always answers",
      segments=_segment_entries(model, plans, tau, ranges),
      int8_ranges={k: list(v) for k, v in ranges.items()},
      layers=_layer_table(model), weight_bytes=graph.packed_weight_bytes(model),
      bits=dict(backbone=[b[0] for b in space.backbone_bits],
                exits=[b[0] for b in space.branch_bits], edge=space.edge_bits))
  manifest.update(extra_manifest or {})
  (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
  return manifest


def _lut_costs(workdir: Path) -> dict | None:
  """The evaluation's expected costs of the early-exit network (``summary.json``)."""
  path = workdir / "summary.json"
  if not path.exists():
    return None
  ee = json.loads(path.read_text()).get("early_exit", {})
  keys = ("latency_s", "energy_j", "edp", "macs", "bitops", "weight_bytes")
  return {k: ee[k] for k in keys if k in ee} or None


def export_run(workdir, out=None, *, jax_reference: bool = True) -> dict:
  """``dnas-ee export``: the run's early-exit network as LiteRT segments + manifest.

  Args:
    workdir: a run dir after ``evaluate`` (at least after ``calibrate``).
    out: the export dir (default ``workdir/export``).
    jax_reference: also store the JAX evaluation of the test split for ``infer``.

  Raises:
    FileNotFoundError: a file of the run dir is missing (the message names the stage
      to run first).
    MissingExtraError: the export extra is not installed.
  """
  from dnas_ee.data.load import load_dataset
  from dnas_ee.stages.run_dir import (check_run_files, evaluation_thresholds, load_run_config,
                                      load_trained)
  require_extra("tensorflow")
  require_extra("ai_edge_litert.interpreter")
  workdir = Path(workdir)
  config = load_run_config(workdir)
  check_run_files(workdir, config)
  if not (workdir / "thresholds.json").exists():
    raise FileNotFoundError(f"{workdir / 'thresholds.json'} is missing: the export ships the "
                            f"calibrated exit thresholds; run `dnas-ee calibrate --workdir "
                            f"{workdir}` first")
  out = Path(out) if out else workdir / DEFAULT_SUBDIR
  space, setup, state = load_trained(config, workdir, "early_exit")
  model = graph.merged_model(setup, state)
  thresholds = evaluation_thresholds(config, workdir, len(space.branches))
  data = load_dataset(config.data)
  extra = dict(source=dict(workdir=str(workdir.resolve()), dataset=config.data.name),
               normalization=dict(mean=list(data.mean), std=list(data.std), units="[0, 1] pixels"),
               lut_expected=_lut_costs(workdir), accelerator=config.hw.accelerator or None)
  (out).mkdir(parents=True, exist_ok=True)
  (out / "config.json").write_text((workdir / "config.json").read_text())
  manifest = export_network(model, thresholds, config.exits.confidence, data.calib.images, out,
                            extra_manifest=extra)
  if jax_reference:
    ref = jax_evaluation(config, setup, state, thresholds, data.test.images)
    np.savez(out / "jax_reference.npz", **ref)
  return manifest


def jax_evaluation(config, setup, state, thresholds, images) -> dict:
  """The run's JAX evaluation (``stages.evaluate``'s decision) of ``images``."""
  from dnas_ee.exits.confidence import host_confidence
  from dnas_ee.exits.decision import first_exit
  from dnas_ee.stages.run_dir import exit_logits
  logits = exit_logits(setup, state, images, config.evaluate.batch_size)
  conf = host_confidence(np.moveaxis(logits, 0, 1), config.exits.confidence)
  exits = first_exit(conf, thresholds)
  rows = np.arange(len(exits))
  return dict(predictions=logits[exits, rows].argmax(-1), exits=exits,
              confidences=conf[rows, exits], logits=logits)


def _rates(exits, num_exits) -> list:
  return (np.bincount(exits, minlength=num_exits) / max(len(exits), 1)).tolist()


def infer(export_dir, *, images=None, labels=None, latency_samples: int = 200,
          jax_latency: bool = True, write: bool | None = None) -> dict:
  """``dnas-ee infer``: run the exported cascade on a data set.

  Without ``images``, evaluates the run's own test split (from the export's
  ``config.json``), compares with the stored JAX evaluation and writes
  ``infer.json`` in the export dir.

  Returns:
    ``accuracy``, ``agreement`` (fraction of images whose prediction equals the JAX
    evaluation's), ``exit_agreement``, ``exit_rates``, ``latency_s`` (LiteRT batch-1
    median per sample) and, when measured, the JAX executor's.
  """
  from dnas_ee.export.cascade import Cascade
  export_dir = Path(export_dir)
  cascade = Cascade(export_dir)
  reference = None
  if images is None:
    from dnas_ee.config import config_from_json
    from dnas_ee.data.load import load_dataset
    config = config_from_json(export_dir / "config.json")
    test = load_dataset(config.data).test
    images, labels = test.images, test.labels
    ref_path = export_dir / "jax_reference.npz"
    reference = dict(np.load(ref_path)) if ref_path.exists() else None
    write = True if write is None else write
  images = np.asarray(images, np.float32)
  t0 = time.perf_counter()
  result = cascade.run(images)
  summary = dict(samples=int(len(images)), exit_rates=_rates(result.exits, cascade.num_exits),
                 run_s=time.perf_counter() - t0)
  if labels is not None:
    summary["accuracy"] = float((result.predictions == np.asarray(labels)).mean())
  if reference is not None:
    summary["agreement"] = float((result.predictions == reference["predictions"]).mean())
    summary["exit_agreement"] = float((result.exits == reference["exits"]).mean())
    summary["jax"] = dict(exit_rates=_rates(reference["exits"], cascade.num_exits))
    if labels is not None:
      summary["jax"]["accuracy"] = float((reference["predictions"] == labels).mean())
  timed = images[:latency_samples]
  lat = cascade.measure_latency(timed)
  summary["latency_s"] = lat["median_s"]
  summary["latency"] = lat
  if jax_latency:
    summary["jax_latency"] = _jax_latency(cascade, timed)
  if write:
    (export_dir / "infer.json").write_text(json.dumps(summary, indent=2) + "\n")
    (export_dir / "infer.md").write_text(infer_table(summary, _run_label(cascade.manifest)))
  return summary


def _run_label(manifest: dict) -> str:
  source = manifest.get("source", {})
  return f"{source.get('dataset', '?')} ({Path(source.get('workdir', '?')).name})"


def _pct(values) -> str:
  return " ".join(f"{100 * v:.1f}" for v in values)


def infer_table(summary: dict, label: str) -> str:
  """``infer``'s summary as the README's markdown table (agreement, accuracy, exit
  rates and batch-1 latency, LiteRT beside JAX)."""
  jax = summary.get("jax", {})
  jax_latency = (summary.get("jax_latency") or {}).get("median_s")
  row = [label, str(summary["samples"]),
         f"{100 * summary['agreement']:.2f}" if "agreement" in summary else "-",
         f"{100 * summary['exit_agreement']:.2f}" if "exit_agreement" in summary else "-",
         f"{100 * summary['accuracy']:.2f} / {100 * jax['accuracy']:.2f}"
         if "accuracy" in jax else f"{100 * summary.get('accuracy', float('nan')):.2f}",
         f"{_pct(summary['exit_rates'])} / {_pct(jax['exit_rates'])}" if jax else
         _pct(summary["exit_rates"]),
         f"{1e6 * summary['latency_s']:.0f} / "
         f"{'-' if jax_latency is None else f'{1e6 * jax_latency:.0f}'}"]
  head = ["run", "test images", "agreement (%)", "same exit (%)", "accuracy LiteRT / JAX (%)",
          "exit rates LiteRT / JAX (%)", "latency batch 1 LiteRT / JAX (us)"]
  return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                     "| " + " | ".join(row) + " |"]) + "\n"


def _jax_latency(cascade, images) -> dict | None:
  """The JAX executor's batch-1 latency on the same images, when the run dir is here."""
  workdir = Path(cascade.manifest.get("source", {}).get("workdir", ""))
  if not workdir.is_dir():
    return None
  from dnas_ee.exits.executor import EarlyExitExecutor, measure_latency
  from dnas_ee.stages.run_dir import evaluation_thresholds, load_run_config, load_trained
  config = load_run_config(workdir)
  space, setup, state = load_trained(config, workdir, "early_exit")
  ex = EarlyExitExecutor.from_state(space, setup.graphdef, state.params, setup.arch, state.stats,
                                    evaluation_thresholds(config, workdir, len(space.branches)),
                                    config.exits.confidence, batch_size=8, min_bucket=1,
                                    bake_weights=True)
  stats = measure_latency(ex, images)
  return dict(median_s=stats.median_s, mean_s=stats.mean_s, p90_s=stats.p90_s,
              samples=stats.samples, executor="EarlyExitExecutor(min_bucket=1, bake_weights=True)")
