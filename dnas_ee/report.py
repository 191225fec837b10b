"""Human-readable views of a run's ``summary.json``."""
from __future__ import annotations

from dnas_ee.cost.metrics import REPORTED_METRICS


def _fmt_exits(genotype: dict) -> str:
  if not genotype["exits"]:
    return "none (static)"
  return "; ".join(f"after block {e['position']}: {' > '.join(e['ops'])} @ {e['bits']}b"
                   for e in genotype["exits"])


def summary_table(summary: dict) -> str:
  """A short text table: chosen exits, ops, bit widths, accuracy and costs."""
  g = summary["genotype"]
  lines = [f"dataset: {summary['dataset']}",
           f"exits:   {_fmt_exits(g)}",
           f"backbone bits: {g['backbone_bits']} (stem/head {g['edge_bits']}b)", ""]
  metrics = [m for m in REPORTED_METRICS if m in summary["static"]]
  header = f"{'network':<12}{'accuracy':>10}" + "".join(f"{m:>14}" for m in metrics) + "  exit rates"
  lines.append(header)
  for which in ("static", "early_exit"):
    e = summary[which]
    rates = " ".join(f"{r:.2f}" for r in e["exit_rates"])
    lines.append(f"{which:<12}{100 * e['accuracy']:>9.2f}%"
                 + "".join(f"{e[m]:>14.4g}" for m in metrics) + f"  {rates}")
  dead = summary["early_exit"].get("dead_exits")
  if dead:
    lines.append(f"dead exits (never fire at the calibrated thresholds): {dead}")
  lines.append("")
  lines.append(f"expected MACs {100 * summary['macs_reduction']:.1f}% below the static backbone; "
               f"accuracy {summary['accuracy_drop_points']:.2f} points below it"
               if summary['accuracy_drop_points'] >= 0 else
               f"expected MACs {100 * summary['macs_reduction']:.1f}% below the static backbone; "
               f"accuracy {-summary['accuracy_drop_points']:.2f} points above it")
  if summary.get("measured_speedup"):
    lines.append(f"measured per-sample latency (batch 1, this machine): "
                 f"{summary['measured_speedup']:.2f}x faster than the static backbone")
  report = summary.get("report")
  if report:
    lines.append(f"report: {report['markdown'] if isinstance(report, dict) else report}")
  return "\n".join(lines)
