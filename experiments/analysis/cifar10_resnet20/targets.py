"""Issue 14's targets, checked on a finished sweep's run dirs: met, missed, or not yet measurable.

Run:  python experiments/analysis/cifar10_resnet20/targets.py --workdir runs/cifar10_resnet20 \\
        [--out experiments/results/cifar10_resnet20/targets.md]

Reads the work dir's ``sweep.json`` (make_table.py writes the one of both ResNet-20
sweeps) and every finished member's summary.json, calibration.json, timing.json and
retraining metrics. Groups are the sweep's method labels; means and sample standard
deviations (ddof=1) over seeds.

- accuracy / EDP: the early-exit network on the test split (summary.json); the
  ``static`` group's network is the backbone alone.
- Pareto front quality: the hypervolume (pymoo) of each member's calibration front
  (every threshold setting the calibration kept: accuracy on the calibration split,
  held out of all training, against EDP / the static backbone's EDP), minimizing
  (1 - accuracy, EDP ratio) with reference point (1, 1). A static member is the
  one point (its error, 1), hypervolume 0.
- Reference B's cost: one candidate = CANDIDATE_EPOCHS epochs of the 37,500 training
  images at the retraining batch, priced at the measured seconds per step of the dnas
  members' early-exit retraining (retrain_early_exit_metrics.jsonl, compile excluded),
  times the candidates AEBNAS trains (its README's CIFAR-10 command), against the dnas members' measured
  search wall-clock (search_s).
- measured latency: summary.json's measured_to_modelled_ratio (batch-1 wall-clock
  reduction over the modelled MAC reduction).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

CANDIDATE_EPOCHS, TRAIN_IMAGES = 5, 37_500
AEBNAS_TRAINED = 100 + (30 + 1) * 8        # --n_doe 100, then 31 iterations of --n_iter 8


def _json(path: Path):
  return json.loads(path.read_text()) if path.exists() else None


def hypervolume(member_dir: Path, summary: dict) -> float | None:
  """Hypervolume of the member's calibration front (see the module docstring)."""
  from pymoo.indicators.hv import HV
  static_edp = summary["static"]["edp"]
  cal = _json(member_dir / "calibration.json")
  if cal is None:   # no early exit: the static network's one point
    points = [(1 - summary["early_exit"]["accuracy"], summary["early_exit"]["edp"] / static_edp)]
  else:
    front = cal["front"]
    points = [(1 - a, c / static_edp) for a, c in zip(front["accuracy"], front["cost"])]
  points = np.asarray([p for p in points if p[1] < 1.0])
  return 0.0 if len(points) == 0 else float(HV(ref_point=np.array([1.0, 1.0]))(points))


def retrain_step_s(member_dir: Path) -> float | None:
  """Seconds per step of the early-exit retraining, first logged step excluded (compile)."""
  path = member_dir / "retrain_early_exit_metrics.jsonl"
  if not path.exists():
    return None
  rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  if len(rows) < 2:
    return None
  return (rows[-1]["time_s"] - rows[0]["time_s"]) / (rows[-1]["step"] - rows[0]["step"])


def collect(workdir: Path) -> dict:
  """{method label: [per-member dict]} of the finished members."""
  manifest = _json(workdir / "sweep.json")
  if manifest is None:
    raise FileNotFoundError(f"{workdir / 'sweep.json'} is missing: run make_table.py first")
  groups: dict[str, list] = {}
  for m in manifest["members"]:
    d = workdir / m["dir"]
    s = _json(d / "summary.json")
    if s is None:
      continue
    config = _json(d / "config.json")
    groups.setdefault(m["method"], []).append(dict(
        seed=m["seed"], accuracy=100 * s["early_exit"]["accuracy"], edp=s["early_exit"]["edp"],
        static_edp=s["static"]["edp"], search_s=s.get("search_s", 0.0), hv=hypervolume(d, s),
        ratio=s.get("measured_to_modelled_ratio"), step_s=retrain_step_s(d),
        batch=config["retrain"]["batch_size"]))
  return groups


def stat(rows, key):
  x = np.asarray([r[key] for r in rows if r.get(key) is not None], float)
  if len(x) == 0:
    return math.nan, math.nan, 0
  return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan, len(x)


def verdict(ok) -> str:
  return "not yet measurable" if ok is None else ("met" if ok else "**missed**")


def targets(groups: dict) -> list[tuple[str, str, str]]:
  """(target, figures, verdict) rows."""
  g = lambda name: groups.get(name, [])
  out = []
  acc_d, sd_d, n_d = stat(g("dnas"), "accuracy")
  acc_s, _, n_s = stat(g("static"), "accuracy")
  acc_h, sd_h, n_h = stat(g("hand_placed"), "accuracy")
  edp_d, _, _ = stat(g("dnas"), "edp")
  edp_s, _, _ = stat(g("static"), "edp")
  edp_h, _, _ = stat(g("hand_placed"), "edp")
  ready = n_d and n_s
  out.append(("static reaches >= 84% (protocol)", f"static {acc_s:.2f}% (n={n_s})",
              verdict(acc_s >= 84 if n_s else None)))
  out.append(("dnas at most 1.0 point below static", f"dnas {acc_d:.2f}% (n={n_d}) vs static "
              f"{acc_s:.2f}%: {acc_d - acc_s:+.2f} points", verdict(acc_d >= acc_s - 1.0 if ready else None)))
  out.append(("dnas EDP at least 40% below static", f"dnas / static EDP = {edp_d / edp_s:.3f}"
              if ready else "–", verdict(edp_d <= 0.6 * edp_s if ready else None)))
  spread = np.nanmax([sd_d, sd_h]) if n_d > 1 or n_h > 1 else math.nan
  out.append(("dnas more accurate than hand_placed (same EDP budget) by more than the std over seeds",
              f"dnas - hand_placed = {acc_d - acc_h:+.2f} points, larger std {spread:.2f}; "
              f"hand_placed / static EDP = {edp_h / edp_s:.3f}" if n_d and n_h and n_s else "–",
              verdict(acc_d - acc_h > spread if n_d > 1 and n_h > 1 else None)))
  hv_d, _, _ = stat(g("dnas"), "hv")
  t_d, _, _ = stat(g("dnas"), "search_s")
  for other in ("random", "evolutionary"):
    hv_o, _, n_o = stat(g(other), "hv")
    t_o, _, _ = stat(g(other), "search_s")
    ok = None if not (n_d and n_o) else bool(hv_d >= hv_o and t_d <= t_o)
    out.append((f"dnas front (calibration split) at least as good as {other}'s, in no more wall-clock",
                f"hypervolume {hv_d:.4f} vs {hv_o:.4f}; search {t_d:.0f} s vs {t_o:.0f} s"
                if n_d and n_o else "–", verdict(ok)))
  step, _, n_step = stat(g("dnas"), "step_s")
  if n_d and n_step:
    batch = g("dnas")[0]["batch"]
    candidate = CANDIDATE_EPOCHS * TRAIN_IMAGES / batch * step
    ratio = AEBNAS_TRAINED * candidate / t_d
    out.append(("dnas search at least 10x cheaper than Reference B's (estimated)",
                f"one candidate {candidate / 3600:.2f} h ({step:.3f} s/step measured) x "
                f"{AEBNAS_TRAINED} = {AEBNAS_TRAINED * candidate / 3600:.0f} h vs dnas "
                f"{t_d / 3600:.2f} h: {ratio:.0f}x", verdict(ratio >= 10)))
  else:
    out.append(("dnas search at least 10x cheaper than Reference B's (estimated)", "–", verdict(None)))
  r, _, n_r = stat(g("dnas"), "ratio")
  out.append(("measured batch-1 latency reduction >= 0.8x the modelled MAC reduction",
              f"dnas mean ratio {r:.2f} (n={n_r})" if n_r else "–", verdict(r >= 0.8 if n_r else None)))
  return out


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", default="runs/cifar10_resnet20")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  groups = collect(Path(args.workdir))
  counts = ", ".join(f"{k} {len(v)}" for k, v in groups.items()) or "none"
  lines = [f"Finished members: {counts}.", "", "| target | figures | verdict |", "|---|---|---|"]
  lines += [f"| {t} | {f} | {v} |" for t, f, v in targets(groups)]
  text = "\n".join(lines) + "\n"
  print(text)
  if args.out:
    Path(args.out).write_text(text)


if __name__ == "__main__":
  main()
