"""The evaluate stage: a retrained run on the test split, and its report.

Everything is computed from the run dir alone (``config.json``, ``genotype.json``,
the final retraining checkpoints, and ``thresholds.json`` when calibrated), so
re-running the evaluation on a copy of the dir reproduces ``summary.json``,
``report.md`` and the plots (the measured wall-clock figures up to timing noise).

For the early-exit network and the static backbone (same backbone and bit widths,
trained alone):

- accuracy, exit rates, per-exit accuracy, dead exits (early exits that no test
  sample leaves at) and disabled ones (threshold ``+inf``: pruned, never computed);
- expected costs per sample from the cost source (MACs and weight bytes; latency,
  energy and EDP = latency x energy per sample where an accelerator LUT is set),
  with disabled exits' branches pruned as the deployed network does;
- the same for the early-exit network's final exit alone (every early exit
  pruned), so reductions are reported both against the static backbone and
  against the early-exit network's own final exit;
- measured wall-clock latency of single-sample inference with
  ``EarlyExitExecutor`` (median over ``latency_samples`` test samples after
  warm-up) for the static backbone, the early-exit network and its final exit
  alone, with the measured latency reduction next to the modelled MAC reduction;
- the accuracy/cost Pareto front of the threshold grid on the test split
  (``pareto_front``) with the chosen thresholds and the static backbone marked,
  and the exit distribution, as PNG files, and ``report.md`` with the tables.
"""
from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path

import jax
import numpy as np

from dnas_ee.cost.metrics import METRIC_LABELS, METRIC_UNITS, REPORTED_METRICS as COST_METRICS
from dnas_ee.cost.network import NetworkCosts, objective_costs
from dnas_ee.data import load_dataset
from dnas_ee.exits.decision import first_exit
from dnas_ee.exits.executor import EarlyExitExecutor, measure_latencies
from dnas_ee.exits.thresholds import pareto_front, thresholds_to_json
from dnas_ee.space.genotype import Genotype
from dnas_ee.stages.run_dir import (
    check_run_files, evaluation_thresholds, exit_logits, exit_table, load_trained)
from dnas_ee.stages.timing import with_timing
from dnas_ee.stages.validity import VALIDITY_FILE, validity_markdown
from dnas_ee.train.build import network_costs
from dnas_ee.train.loop import is_primary

REPORT_FILE = "report.md"
PARETO_PLOT = "pareto_test.png"
EXITS_PLOT = "exit_distribution.png"


@dataclasses.dataclass
class NetworkEvaluation:
  """One network on the test split (the summary entry and what the report needs)."""
  which: str
  space: object
  setup: object
  state: object
  costs: NetworkCosts
  conf: np.ndarray
  correct: np.ndarray
  thresholds: np.ndarray
  entry: dict


def evaluate_network(config, workdir: Path, which: str, images, labels) -> NetworkEvaluation:
  """Accuracy, exits and expected costs of ``which`` (``'early_exit'`` or ``'static'``)."""
  space, setup, state = load_trained(config, workdir, which)
  costs = network_costs(config, space)
  logits = exit_logits(setup, state, images, config.evaluate.batch_size)
  conf, correct = exit_table(logits, labels, config.exits.confidence)
  thresholds, source = evaluation_thresholds(config, workdir, len(space.branches),
                                             with_source=True)
  taken = first_exit(conf, thresholds)
  n = len(taken)
  rates = np.bincount(taken, minlength=space.num_exits) / n
  deployed = costs.deployed(thresholds)
  entry = dict(accuracy=float(correct[np.arange(n), taken].mean()),
               exit_rates=rates.tolist(), thresholds=thresholds_to_json(thresholds),
               threshold_source=source, confidence=config.exits.confidence,
               final_exit_accuracy=float(correct[:, -1].mean()),
               exit_accuracy=correct.mean(0).tolist(),
               exit_positions=[b.position for b in space.branches],
               dead_exits=[int(k) for k in np.flatnonzero(rates[:-1] == 0)],
               disabled_exits=[int(k) for k in np.flatnonzero(thresholds == np.inf)])
  entry.update(_expected(costs, rates, deployed))
  final_rates = np.zeros(space.num_exits)
  final_rates[-1] = 1.0
  entry["final_only"] = dict(accuracy=float(correct[:, -1].mean()),
                             **_expected(costs, final_rates,
                                         costs.deployed(np.full(len(space.branches), np.inf))))
  return NetworkEvaluation(which, space, setup, state, costs, conf, correct, thresholds, entry)


def _expected(costs: NetworkCosts, rates: np.ndarray, per_exit: np.ndarray) -> dict:
  """Expected cost per sample of each metric (and EDP = E[latency x energy])."""
  out = {name: float(value) for name, value in zip(costs.metrics, rates @ per_exit)}
  if costs.has("edp"):
    out["edp"] = float(rates @ costs.column(per_exit, "edp"))
  return out


def _device() -> str:
  dev = jax.devices()[0]
  kind = getattr(dev, "device_kind", "") or dev.platform
  if dev.platform == "cpu":
    kind = platform.processor() or _cpu_model() or kind
  return f"{dev.platform}: {kind}"


def _cpu_model() -> str:
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return ""


def measure_networks(config, ee: NetworkEvaluation, static: NetworkEvaluation, images, *,
                     samples: int, repeats: int = 3) -> dict:
  """Single-sample wall-clock latency of the three deployments, on ``images[:samples]``.

  Returns:
    ``{"device", "samples", "mode", "static", "early_exit", "early_exit_final_only"}``,
    each network a ``LatencyStats.to_dict()`` (seconds).
  """
  measure = config.exits.confidence
  images = images[:samples]
  out = dict(device=_device(), samples=int(len(images)), repeats=int(repeats),
             mode="single sample (batch 1), median over samples of the best of the repeats, "
                  "networks interleaved sample by sample, after compiling and 5 warm-up "
                  "samples")
  nets = dict(static=(static, static.thresholds),
              early_exit=(ee, ee.thresholds),
              early_exit_final_only=(ee, np.full(len(ee.space.branches), np.inf)))
  executors = {name: EarlyExitExecutor.from_state(
      net.space, net.setup.graphdef, net.state.params, net.setup.arch, net.state.stats,
      thresholds, measure, batch_size=1, min_bucket=1) for name, (net, thresholds) in nets.items()}
  stats = measure_latencies(executors, images, warmup=5, repeats=repeats)
  out.update({name: st.to_dict() for name, st in stats.items()})
  return out


def _reduction(value, reference):
  if value is None or reference is None or not reference:
    return None
  return 1.0 - value / reference


def evaluate(config, workdir, *, latency_samples: int = 50, report: bool = True) -> dict:
  """The evaluate stage: test-split evaluation of both networks; writes ``summary.json``
  (with the run's ``timing.json``), ``report.md`` and plots (``evaluate_run``).

  Raises:
    FileNotFoundError: a file the evaluation needs is missing (named).
  """
  summary = evaluate_run(config, workdir, latency_samples=latency_samples, report=report)
  return with_timing(summary, workdir)


def evaluate_run(config, workdir, *, latency_samples: int = 50, report: bool = True) -> dict:
  """The whole evaluation; writes ``summary.json`` (and ``report.md`` + plots).

  Args:
    config: the run's config.
    workdir: the run dir.
    latency_samples: test samples timed per network (0 skips the measurement).
    report: write ``report.md`` and the PNG plots.

  Returns:
    The summary dict (as written to ``summary.json``).

  Raises:
    FileNotFoundError: a required file of the run dir is missing (named).
  """
  workdir = Path(workdir)
  check_run_files(workdir, config)
  genotype = Genotype.load(workdir / "genotype.json")
  data = load_dataset(config.data)
  images, labels = data.test.images, data.test.labels
  ee = evaluate_network(config, workdir, "early_exit", images, labels)
  static = evaluate_network(config, workdir, "static", images, labels)
  summary = dict(dataset=config.data.name, genotype=genotype.to_json(),
                 test_samples=int(len(labels)), static=static.entry, early_exit=ee.entry)
  s, e = static.entry, ee.entry
  summary["macs_reduction"] = 1 - e["macs"] / s["macs"]
  summary["accuracy_drop_points"] = 100 * (s["accuracy"] - e["accuracy"])
  reductions = dict(vs_static={}, vs_final_exit={})
  for metric in COST_METRICS:
    if metric in e:
      reductions["vs_static"][metric] = _reduction(e[metric], s[metric])
      reductions["vs_final_exit"][metric] = _reduction(e[metric], e["final_only"][metric])
  reductions["vs_static"]["accuracy_points"] = 100 * (e["accuracy"] - s["accuracy"])
  reductions["vs_final_exit"]["accuracy_points"] = 100 * (e["accuracy"] -
                                                          e["final_only"]["accuracy"])
  if latency_samples > 0:
    measured = measure_networks(config, ee, static, images, samples=latency_samples)
    lat = {k: measured[k]["median_s"] for k in ("static", "early_exit", "early_exit_final_only")}
    reductions["vs_static"]["measured_latency"] = _reduction(lat["early_exit"], lat["static"])
    reductions["vs_final_exit"]["measured_latency"] = _reduction(lat["early_exit"],
                                                                 lat["early_exit_final_only"])
    summary["measured"] = measured
    summary["measured_speedup"] = lat["static"] / lat["early_exit"]
    summary["measured_latency_reduction"] = reductions["vs_static"]["measured_latency"]
    modelled = summary["macs_reduction"]
    summary["measured_to_modelled_ratio"] = (
        summary["measured_latency_reduction"] / modelled if modelled > 0 else None)
    if _measured_here(config) and e.get("latency_s") and s.get("latency_s"):
      # The LUT was measured on a JAX device (`dnas-ee lut measure`): modelled and
      # measured latency then speak of the same kind of machine, and their ratio is the
      # LUT's fidelity (sum of per-op times against the executor's wall-clock).
      summary["same_device_lut"] = str(config.hw.accelerator)
      summary["modelled_speedup_same_device"] = s["latency_s"] / e["latency_s"]
      summary["measured_to_modelled_speedup"] = (summary["measured_speedup"]
                                                 / summary["modelled_speedup_same_device"])
  else:
    summary["measured"] = None
  summary["reductions"] = reductions
  if not is_primary():   # a multi-host run: every host computes it, process 0 writes it
    return summary
  if report:
    summary["report"] = write_report(workdir, config, summary, ee, static)
  (workdir / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
  return summary


def _measured_here(config) -> bool:
  """Whether the run's LUT was measured on a JAX device of the platform timed here."""
  from dnas_ee.hw.lut.measure import device_name
  return str(config.hw.accelerator) == device_name()


# --------------------------------------------------------------------------- report


def write_report(workdir: Path, config, summary: dict, ee: NetworkEvaluation,
                 static: NetworkEvaluation) -> dict:
  """Writes the plots and ``report.md``; returns their file names."""
  from dnas_ee.exits.plots import plot_exit_distribution, plot_pareto

  obj = objective_costs(config.hw.objective, ee.costs, static.costs,
                        config.loss.metric_weights.to_dict())
  e, s = summary["early_exit"], summary["static"]
  plots = {}
  if ee.space.branches:
    front = pareto_front(ee.conf, ee.correct, obj.cumulative, branch_cost=obj.branch)
    chosen_cost = float(np.asarray(e["exit_rates"]) @ obj.vector(ee.costs.deployed(ee.thresholds)))
    final_cost = float(obj.vector(ee.costs.backbone[None])[0])
    plot_pareto(front, None, (obj.reference, s["accuracy"]), workdir / PARETO_PLOT,
                cost_label=f"expected {obj.label} per sample",
                points=[(chosen_cost, e["accuracy"], "chosen thresholds"),
                        (final_cost, e["final_only"]["accuracy"], "early-exit net, final exit only")],
                title=f"test split ({summary['test_samples']} samples): thresholds grid")
    plots["pareto"] = PARETO_PLOT
    summary["pareto_test"] = dict(metric=obj.metric, note=obj.note, exact=bool(front.exact),
                                  settings=int(len(front.cost)),
                                  cost=front.cost[front.pareto].tolist(),
                                  accuracy=front.accuracy[front.pareto].tolist(),
                                  thresholds=thresholds_to_json(front.thresholds[front.pareto]))
  names = [f"after block {p}" for p in e["exit_positions"]] + ["final"]
  plot_exit_distribution(e["exit_rates"], names, workdir / EXITS_PLOT)
  plots["exit_distribution"] = EXITS_PLOT
  (workdir / REPORT_FILE).write_text(report_markdown(summary, workdir, obj.note))
  return dict(markdown=REPORT_FILE, plots=plots)


def _si(value, unit: str) -> str:
  if value is None:
    return "-"
  for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"), (1e-6, "µ"),
                         (1e-9, "n"), (1e-12, "p"), (1e-15, "f")):
    if abs(value) >= factor:
      return f"{value / factor:.4g} {prefix}{unit}"
  return f"{value:.3g} {unit}"


def _pct(value) -> str:
  return "-" if value is None else f"{100 * value:+.1f}%"


def report_markdown(summary: dict, workdir: Path, note: str = "") -> str:
  """The text of ``report.md`` from a summary dict."""
  e, s = summary["early_exit"], summary["static"]
  metrics = [m for m in COST_METRICS if m in e]
  measured = summary.get("measured")
  g = summary["genotype"]
  exits = "; ".join(f"after block {x['position']}: {' > '.join(x['ops'])} @ {x['bits']}b"
                    for x in g["exits"]) or "none (static)"
  tau = ", ".join(str(v) if isinstance(v, str) else f"{v:.4g}" for v in e["thresholds"])
  lines = [f"# Evaluation of `{workdir.name}`", "",
           f"- data set: {summary['dataset']}, test split ({summary['test_samples']} samples)",
           f"- exits: {exits}",
           f"- backbone bits: {g['backbone_bits']} (stem/head {g['edge_bits']}b)",
           f"- thresholds ({e['confidence']}): [{tau}], from {e['threshold_source']}",
           f"- dead exits (no test sample leaves there): "
           f"{_exit_list(e['dead_exits'], e['exit_positions'])}; disabled (+inf, pruned): "
           f"{_exit_list(e['disabled_exits'], e['exit_positions'])}"]
  if note:
    lines.append(f"- note: {note}")
  lines += ["", "## Results", ""]
  head = ["network", "accuracy", "exit rates"] + [METRIC_LABELS[m].split(" (")[0] + " (model)"
                                                  for m in metrics]
  if measured:
    head += ["measured latency (median)", "measured speed-up vs static"]
  lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  rows = [("static backbone", s, [1.0], "static"),
          ("early-exit, final exit only", e["final_only"],
           [0.0] * len(e["exit_positions"]) + [1.0], "early_exit_final_only"),
          ("early-exit", e, e["exit_rates"], "early_exit")]
  for label, entry, rates, key in rows:
    cells = [label, f"{100 * entry['accuracy']:.2f}%", " / ".join(f"{r:.2f}" for r in rates)]
    cells += [_si(entry[m], METRIC_UNITS[m]) for m in metrics]
    if measured:
      med = measured[key]["median_s"]
      cells += [_si(med, "s"), f"{measured['static']['median_s'] / med:.2f}x"]
    lines.append("| " + " | ".join(cells) + " |")
  red = summary["reductions"]
  lines += ["", "## Reductions of the early-exit network",
            "", "Positive: lower cost (or higher accuracy) than the reference.", "",
            "| quantity | vs static backbone | vs its own final exit alone |", "|---|---|---|"]
  acc = red["vs_static"]["accuracy_points"], red["vs_final_exit"]["accuracy_points"]
  lines.append(f"| accuracy (points) | {acc[0]:+.2f} | {acc[1]:+.2f} |")
  for m in metrics:
    lines.append(f"| {METRIC_LABELS[m].split(' (')[0]} (modelled) | "
                 f"{_pct(red['vs_static'][m])} | {_pct(red['vs_final_exit'][m])} |")
  if measured:
    lines.append(f"| wall-clock latency (measured) | {_pct(red['vs_static']['measured_latency'])} "
                 f"| {_pct(red['vs_final_exit']['measured_latency'])} |")
    ratio = summary.get("measured_to_modelled_ratio")
    lines += ["", f"Measured speed-up {summary['measured_speedup']:.2f}x; measured latency "
                  f"reduction {_pct(summary['measured_latency_reduction'])} against the modelled "
                  f"MAC reduction {_pct(summary['macs_reduction'])}: ratio "
                  + ("-" if ratio is None else f"{ratio:.2f}") + " (goal >= 0.8)."]
    if "modelled_speedup_same_device" in summary:
      lines += ["", f"Same-device check: the LUT ({summary['same_device_lut']}, measured with "
                    f"`dnas-ee lut measure`) models a "
                    f"{summary['modelled_speedup_same_device']:.2f}x speed-up; the executor "
                    f"measured {summary['measured_speedup']:.2f}x (ratio "
                    f"{summary['measured_to_modelled_speedup']:.2f})."]
    lines += ["", f"Measured on {measured['device']}: {measured['mode']}, "
                  f"{measured['samples']} test samples, `EarlyExitExecutor.predict_one` "
                  f"(timed samples' exit rates: "
                  + " / ".join(f"{r:.2f}" for r in measured["early_exit"]["exit_rates"]) + ")."]
  lines += ["", "Modelled costs are expected values per test sample from the cost source (MACs "
                "from shapes; latency and energy from the accelerator LUT where one is set; EDP "
                "= E[latency x energy]). Disabled exits are pruned: their branches are neither "
                "computed nor counted.", "", "## Plots", ""]
  if summary.get("pareto_test"):
    lines += [f"![accuracy vs cost on the test split]({PARETO_PLOT})", ""]
  lines += [f"![exit distribution]({EXITS_PLOT})", ""]
  lines += _search_section(workdir, g)
  if (workdir / VALIDITY_FILE).exists():
    lines += validity_markdown(json.loads((workdir / VALIDITY_FILE).read_text()))
  return "\n".join(lines)


def _search_section(workdir: Path, genotype: dict) -> list[str]:
  """How the search decided: the derivation record and the trajectory plots (if any)."""
  lines = []
  derivation = genotype.get("derivation")
  if derivation:
    band = derivation["gate_band"]
    lines += ["## How the search decided", "",
              f"Derive rule `{derivation['rule']}`; gate probabilities at the final temperature "
              f"{derivation['temperature']:.3g}; a gate is decided outside {band}. "
              f"All gates decided: {derivation['all_gates_decided']}.", "",
              "| candidate exit | gate | kept | decided | search threshold | why |",
              "|---|---|---|---|---|---|"]
    for e in derivation["exits"]:
      tau = "-" if e.get("threshold") is None else f"{e['threshold']:.3f}"
      lines.append(f"| after block {e['position']} | {e['gate']:.3f} | {e['kept']} | "
                   f"{e['decided']} | {tau} | {e['reason']} |")
    lines.append("")
  plots = [("search_gates.png", "exit gates and thresholds against the search step"),
           ("search_ops.png", "op probabilities of every branch slot against the step"),
           ("search_bits.png", "bit-width probabilities of every group against the step")]
  for name, alt in plots:
    if (workdir / "plots" / name).exists():
      lines += [f"![{alt}](plots/{name})", ""]
  return lines


def _exit_list(indices, positions) -> str:
  return ", ".join(f"{k} (after block {positions[k]})" for k in indices) if indices else "none"
