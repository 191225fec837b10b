"""One table of both ResNet-20 sweeps, copied with every member's artifacts into
experiments/results/cifar10_resnet20/.

Run:  python experiments/analysis/cifar10_resnet20/make_table.py --workdir runs/cifar10_resnet20

The sweep format crosses every method with every seed, so the 3-seed members
(cifar10_resnet20.py) and the 1-seed ones (cifar10_resnet20_once.py) are two sweeps
run into the same work dir. This writes the work dir's ``sweep.json`` listing the
members of both (the manifest ``dnas-ee sweep`` writes for one), runs ``dnas-ee
table --out`` on it (table.md, table.csv: one row per member, groups.csv,
pareto.png, and each finished member's small artifacts in ``members/<run dir>/``,
copied to ``--out``).
"""
from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "experiments" / "results" / "cifar10_resnet20"
SWEEPS = ("cifar10_resnet20.py", "cifar10_resnet20_once.py")


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", default="runs/cifar10_resnet20")
  parser.add_argument("--out", default=str(RESULTS))
  args = parser.parse_args()
  from dnas_ee.sweep.runner import write_manifest
  from dnas_ee.sweep.spec import load_sweep, sweep_members
  workdir, out = Path(args.workdir), Path(args.out)
  sweeps = [load_sweep(ROOT / "experiments" / "sweeps" / name) for name in SWEEPS]
  members = [m for s in sweeps for m in sweep_members(s)]
  write_manifest(dict(path=" + ".join(s["path"] for s in sweeps), cost="edp"), members, workdir)
  subprocess.run(["dnas-ee", "table", "--workdir", str(workdir), "--out", str(out)], check=True)
  copied = sum(1 for m in members if (workdir / m.dir_name / "summary.json").exists())
  print(f"{copied} of {len(members)} members finished; table and artifacts in {out}")


if __name__ == "__main__":
  main()
