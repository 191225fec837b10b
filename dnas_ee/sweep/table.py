"""One table from a sweep's summaries: mean, sample std and a 95% Student-t interval over seeds.

For every group (config, setting, method) and metric: ``mean``, ``std`` (sample
standard deviation, ``ddof=1``) and the 95% confidence interval of the mean,
``mean +- t_{0.975, n-1} * std / sqrt(n)`` (Student's t, ``scipy.stats.t``), over
the group's seeds. Written as markdown (``table.md``), CSV and a Pareto plot
(``pareto.png``: accuracy against the chosen cost, one marker per member, group
means with standard-deviation error bars). ``table.csv`` has one row per member
(``MEMBER_COLUMNS``: accuracy as a fraction, costs as modelled per sample, in SI
units, so a script can redo any statistic); ``groups.csv`` the statistics above.
"""
from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
from scipy import stats

INTERVAL = ("mean ± sample std (ddof=1) [95% Student-t confidence interval of the mean, "
            "t(0.975, n-1)·std/√n] over seeds")

# (key, column label, scale, path into summary.json); the early-exit network's figures.
METRICS = (
    ("accuracy", "accuracy (%)", 100.0, ("early_exit", "accuracy")),
    ("static_accuracy", "own static backbone acc. (%)", 100.0, ("static", "accuracy")),
    ("macs", "MACs (k)", 1e-3, ("early_exit", "macs")),
    ("latency_s", "latency, LUT (us)", 1e6, ("early_exit", "latency_s")),
    ("energy_j", "energy, LUT (uJ)", 1e6, ("early_exit", "energy_j")),
    ("edp", "EDP, LUT (pJ s)", 1e12, ("early_exit", "edp")),
    ("measured_s", "measured latency, batch 1 (us)", 1e6, ("measured", "early_exit", "median_s")),
    ("search_s", "search wall-clock (s)", 1.0, ("search_s",)),
)


# table.csv: one row per member, the summary's figures unscaled (accuracy a fraction;
# MACs, seconds, joules and joule-seconds per sample; measured_latency_s: batch 1).
MEMBER_COLUMNS = ("config", "setting", "method", "seed", "dir", "accuracy", "static_accuracy",
                  "macs", "latency_s", "energy_j", "edp", "measured_latency_s", "search_s")
_MEMBER_PATHS = {key: path for key, _, _, path in METRICS} | {
    "measured_latency_s": ("measured", "early_exit", "median_s")}


def spread(values) -> dict:
  """n, mean, sample std and the 95% Student-t interval of the mean (NaN where n < 2)."""
  x = np.asarray([v for v in values if v is not None and np.isfinite(v)], float)
  n = len(x)
  if n == 0:
    return dict(n=0, mean=math.nan, std=math.nan, lo=math.nan, hi=math.nan)
  mean = float(x.mean())
  if n < 2:
    return dict(n=1, mean=mean, std=math.nan, lo=math.nan, hi=math.nan)
  std = float(x.std(ddof=1))
  half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))
  return dict(n=n, mean=mean, std=std, lo=mean - half, hi=mean + half)


def _get(summary: dict, path):
  node = summary
  for key in path:
    if not isinstance(node, dict) or key not in node:
      return None
    node = node[key]
  return float(node) if isinstance(node, (int, float)) else None


def member_rows(workdir, sweep=None) -> list[dict]:
  """One dict per member (labels, run dir, summary or None), from the sweep file or the
  work dir's ``sweep.json``."""
  workdir = Path(workdir)
  if sweep:
    from dnas_ee.sweep.spec import load_sweep, sweep_members
    members = [dict(dir=m.dir_name, config=m.config_label, setting=m.setting, method=m.method,
                    seed=m.seed) for m in sweep_members(load_sweep(sweep))]
  else:
    manifest = workdir / "sweep.json"
    if not manifest.exists():
      raise FileNotFoundError(f"{manifest} is missing: run `dnas-ee sweep --sweep FILE --workdir "
                              f"{workdir}` first, or pass --sweep FILE")
    members = json.loads(manifest.read_text())["members"]
  rows = []
  for m in members:
    path = workdir / m["dir"] / "summary.json"
    rows.append(dict(m, summary=json.loads(path.read_text()) if path.exists() else None))
  return rows


def aggregate(rows) -> list[dict]:
  """Per group (config, setting, method, in first-seen order): seeds, and ``spread`` per metric."""
  groups: dict[tuple, list] = {}
  for row in rows:
    groups.setdefault((row["config"], row["setting"], row["method"]), []).append(row)
  out = []
  for (config, setting, method), members in groups.items():
    done = [r for r in members if r["summary"] is not None]
    entry = dict(config=config, setting=setting, method=method, members=len(members),
                 seeds=[r["seed"] for r in done])
    for key, _, scale, path in METRICS:
      values = [_get(r["summary"], path) for r in done]
      entry[key] = spread([v * scale for v in values if v is not None])
    out.append(entry)
  return out


def _cell(s: dict, digits: int) -> str:
  if s["n"] == 0:
    return "–"
  if s["n"] == 1:
    return f"{s['mean']:.{digits}f}"
  return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f} [{s['lo']:.{digits}f}, {s['hi']:.{digits}f}]"


_DIGITS = dict(accuracy=2, static_accuracy=2, macs=1, latency_s=2, energy_j=3, edp=2, measured_s=1,
               search_s=1)


def markdown(groups: list[dict]) -> str:
  keys = [k for k, *_ in METRICS if any(g[k]["n"] for g in groups)]
  labels = {k: label for k, label, *_ in METRICS}
  lines = [f"Cells: {INTERVAL}.", "",
           "| config | setting | method | seeds | " + " | ".join(labels[k] for k in keys) + " |",
           "|---" * (4 + len(keys)) + "|"]
  for g in groups:
    seeds = f"{len(g['seeds'])}/{g['members']}"
    lines.append(f"| {g['config']} | {g['setting']} | {g['method']} | {seeds} | "
                 + " | ".join(_cell(g[k], _DIGITS[k]) for k in keys) + " |")
  return "\n".join(lines) + "\n"


def to_csv(groups: list[dict]) -> str:
  buf = io.StringIO()
  fields = ["config", "setting", "method", "seeds"] + [
      f"{k}_{s}" for k, *_ in METRICS for s in ("n", "mean", "std", "ci95_lo", "ci95_hi")]
  writer = csv.DictWriter(buf, fieldnames=fields)
  writer.writeheader()
  for g in groups:
    row = dict(config=g["config"], setting=g["setting"], method=g["method"],
               seeds=" ".join(map(str, g["seeds"])))
    for k, *_ in METRICS:
      s = g[k]
      row.update({f"{k}_n": s["n"], f"{k}_mean": s["mean"], f"{k}_std": s["std"],
                  f"{k}_ci95_lo": s["lo"], f"{k}_ci95_hi": s["hi"]})
    writer.writerow(row)
  return buf.getvalue()


def members_csv(rows) -> str:
  """One CSV row per member (``MEMBER_COLUMNS``); empty cells where a member has no summary."""
  buf = io.StringIO()
  writer = csv.DictWriter(buf, fieldnames=MEMBER_COLUMNS)
  writer.writeheader()
  for r in rows:
    row = {k: r[k] for k in ("config", "setting", "method", "seed", "dir")}
    for key in MEMBER_COLUMNS[5:]:
      value = _get(r["summary"], _MEMBER_PATHS[key]) if r["summary"] is not None else None
      row[key] = "" if value is None else repr(value)
    writer.writerow(row)
  return buf.getvalue()


def pareto_plot(rows, groups, cost: str, path) -> None:
  """Accuracy against ``cost`` of the early-exit network: members and group means."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  key = {"macs": "macs", "latency_s": "latency_s", "energy_j": "energy_j", "edp": "edp"}[cost]
  _, label, scale, spath = next(m for m in METRICS if m[0] == key)
  fig, ax = plt.subplots(figsize=(6.4, 4.4))
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for i, g in enumerate(groups):
    color = colors[i % len(colors)]
    members = [r for r in rows if (r["config"], r["setting"], r["method"]) ==
               (g["config"], g["setting"], g["method"]) and r["summary"] is not None]
    xs = [_get(r["summary"], spath) for r in members]
    ys = [_get(r["summary"], ("early_exit", "accuracy")) for r in members]
    pts = [(x * scale, 100 * y) for x, y in zip(xs, ys) if x is not None and y is not None]
    if not pts:
      continue
    ax.scatter(*zip(*pts), color=color, alpha=0.35, s=18)
    name = " / ".join(v for v in (g["config"], g["setting"], g["method"]) if v != "default")
    xerr = 0 if math.isnan(g[key]["std"]) else g[key]["std"]
    yerr = 0 if math.isnan(g["accuracy"]["std"]) else g["accuracy"]["std"]
    ax.errorbar(g[key]["mean"], g["accuracy"]["mean"], xerr=xerr, yerr=yerr, fmt="o", color=color,
                capsize=3, label=name)
  ax.set_xlabel(label)
  ax.set_ylabel("test accuracy (%)")
  ax.set_title("members (small) and means ± std over seeds")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write_table(workdir, *, sweep=None, cost=None) -> str:
  """Writes ``table.md``, ``table.csv`` (per member), ``groups.csv`` (per group) and
  ``pareto.png`` into ``workdir``; returns the markdown."""
  workdir = Path(workdir)
  rows = member_rows(workdir, sweep)
  groups = aggregate(rows)
  if cost is None:
    manifest = workdir / "sweep.json"
    cost = json.loads(manifest.read_text()).get("cost", "macs") if manifest.exists() else "macs"
  text = markdown(groups)
  missing = sum(r["summary"] is None for r in rows)
  if missing:
    text += f"\n{missing} of {len(rows)} members have no summary.json yet (not in the table).\n"
  (workdir / "table.md").write_text(text)
  (workdir / "table.csv").write_text(members_csv(rows))
  (workdir / "groups.csv").write_text(to_csv(groups))
  pareto_plot(rows, groups, cost, workdir / "pareto.png")
  return text


TABLE_FILES = ("table.md", "table.csv", "groups.csv", "pareto.png")
MEMBER_FILES = ("summary.json", "genotype.json", "config.json", "thresholds.json",
                "search_trajectory.json", "one_shot_validity.json")


def export_results(workdir, out) -> int:
  """Copies a sweep's table files and each finished member's small artifacts
  (``MEMBER_FILES`` where present, into ``out/members/<run dir>/``) to ``out``, the
  folder committed with the results (never checkpoints or data). Returns the number
  of members copied."""
  workdir, out = Path(workdir), Path(out)
  out.mkdir(parents=True, exist_ok=True)
  for name in TABLE_FILES:
    shutil.copy2(workdir / name, out / name)
  copied = 0
  for row in member_rows(workdir, None):
    run_dir = workdir / row["dir"]
    if row["summary"] is None:
      continue
    target = out / "members" / row["dir"]
    target.mkdir(parents=True, exist_ok=True)
    for name in MEMBER_FILES:
      if (run_dir / name).exists():
        shutil.copy2(run_dir / name, target / name)
    copied += 1
  return copied
