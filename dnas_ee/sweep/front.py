"""The accuracy-vs-cost front of a one-shot sweep (members run with the 'inherited' stage).

Reads every member's ``inherited.json`` (the derived architecture inside its
trained supernet, and the static reference) listed in the work dir's
``sweep.json``, and writes ``front.md`` (table), ``front.csv`` and ``front.png``
(accuracy against the searched metric relative to the static reference, one
point per member, the static reference marked). Whether the searched cost falls
as lambda rises is stated in the table, not assumed.

    python -m dnas_ee.sweep.front --workdir runs/lambda_digits --out experiments/results/lambda_digits
"""
from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np

from dnas_ee.sweep.runner import MANIFEST


def front_rows(workdir) -> list[dict]:
  """One row per member that has an ``inherited.json``, in lambda order."""
  workdir = Path(workdir)
  manifest = json.loads((workdir / MANIFEST).read_text())
  rows = []
  for member in manifest["members"]:
    path = workdir / member["dir"] / "inherited.json"
    if not path.exists():
      continue
    r = json.loads(path.read_text())
    derived, static = r["derived"], r["static"]
    genotype = r.get("genotype") or {}
    rows.append(dict(
        setting=member["setting"], seed=member["seed"], lam=r["lam"]["end"],
        objective=r["objective"], accuracy=derived["accuracy"],
        static_accuracy=static["accuracy"], cost_ratio=r["searched_ratio"],
        exits=[e["position"] for e in genotype.get("exits", [])],
        backbone_bits=genotype.get("backbone_bits"),
        branch_ops=[list(e["ops"]) for e in genotype.get("exits", [])],
        exit_rates=derived["exit_rates"],
        gates_decided=(genotype.get("derivation") or {}).get("all_gates_decided")))
  return sorted(rows, key=lambda row: (row["lam"], row["seed"]))


def monotone_report(rows) -> str:
  """Whether the searched cost is non-increasing in lambda (and where it is not)."""
  costs = [r["cost_ratio"] for r in rows]
  breaks = [f"lambda {rows[i]['lam']:g} -> {rows[i + 1]['lam']:g}" for i in range(len(rows) - 1)
            if costs[i + 1] > costs[i] + 1e-12]
  if not breaks:
    return "The searched cost is non-increasing as lambda rises (every step)."
  return "The searched cost rises at: " + ", ".join(breaks) + "."


def markdown(rows) -> str:
  lines = ["| lambda | accuracy | static acc. | searched cost / static | exits | exit rates | "
           "backbone bits | branch ops | gates decided |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['lam']:g} | {100 * r['accuracy']:.2f}% | {100 * r['static_accuracy']:.2f}% | "
        f"{r['cost_ratio']:.3f} | {r['exits'] or 'none'} | "
        f"{', '.join(f'{100 * x:.0f}%' for x in r['exit_rates'])} | {r['backbone_bits']} | "
        f"{'; '.join('/'.join(o) for o in r['branch_ops']) or '-'} | {r['gates_decided']} |")
  return "\n".join(lines) + "\n\n" + monotone_report(rows) + "\n"


def to_csv(rows) -> str:
  out = io.StringIO()
  fields = ["lam", "seed", "objective", "accuracy", "static_accuracy", "cost_ratio", "exits",
            "backbone_bits", "exit_rates", "gates_decided"]
  writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
  writer.writeheader()
  for r in rows:
    writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})
  return out.getvalue()


def plot(rows, path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(5.5, 4))
  cost = np.array([r["cost_ratio"] for r in rows])
  acc = np.array([100 * r["accuracy"] for r in rows])
  ax.plot(cost, acc, "o-", label="derived (supernet weights)")
  for r, c, a in zip(rows, cost, acc):
    ax.annotate(f"λ={r['lam']:g}", (c, a), textcoords="offset points", xytext=(4, 4), fontsize=8)
  ax.plot([1.0], [100 * np.mean([r["static_accuracy"] for r in rows])], "k*", ms=12,
          label="static backbone (widest bits)")
  ax.set_xlabel(f"searched cost ({rows[0]['objective']}) / static")
  ax.set_ylabel("test accuracy (%)")
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write_front(workdir, out_dir) -> str:
  rows = front_rows(workdir)
  if not rows:
    raise FileNotFoundError(f"no member of {workdir} has an inherited.json yet: run the sweep")
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  text = markdown(rows)
  (out_dir / "front.md").write_text(text)
  (out_dir / "front.csv").write_text(to_csv(rows))
  plot(rows, out_dir / "front.png")
  return text


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--out", required=True)
  args = parser.parse_args(argv)
  print(write_front(args.workdir, args.out))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
