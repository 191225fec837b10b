"""Compares the ZigZag and analytic LUTs of every shipped accelerator (hwmodels/README.md).

    python experiments/hw_checks/compare_models.py [--luts DIR (default: the shipped hwmodels/luts)]

For the conv/dense rows present in both files: the median (min-max) ZigZag/analytic
ratio of latency and energy, the Spearman rank correlation of energies, and what
2 and 4 bits buy against 8 bits (median ratio of the 2- or 4-bit row to the 8-bit
row of the same layer) in each model.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from dnas_ee.hw import hwmodels_dir, list_accelerators, load_lut
from dnas_ee.space.signature import WEIGHTED_OPS, OpSignature


def _bits_ratio(lut, field: str, bits: int) -> float:
  ratios = []
  for key, cost in lut.rows.items():
    sig = OpSignature.from_key(key)
    if sig.op in WEIGHTED_OPS and sig.w_bits == sig.a_bits == bits:
      ref = lut.rows.get(sig.with_bits(8).key())
      if ref is not None and getattr(ref, field) > 0:
        ratios.append(getattr(cost, field) / getattr(ref, field))
  return float(np.median(ratios))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--luts", default=str(hwmodels_dir() / "luts"))
  luts = Path(parser.parse_args().luts)
  print("| accelerator | ops | latency ZZ/an median (min-max) | energy ZZ/an median (min-max) "
        "| Spearman energy | ZZ 4b/8b, 2b/8b latency | an 4b/8b, 2b/8b latency "
        "| ZZ 4b/8b, 2b/8b energy | an 4b/8b, 2b/8b energy |")
  print("|---|---|---|---|---|---|---|---|---|")
  for name in list_accelerators():
    zz, an = load_lut(luts / f"{name}.json"), load_lut(luts / f"{name}.analytic.json")
    keys = [k for k in zz.rows if k in an.rows and k.split("_", 1)[0] in WEIGHTED_OPS]
    lat = np.array([zz.rows[k].latency_s / an.rows[k].latency_s for k in keys])
    en = np.array([zz.rows[k].energy_j / an.rows[k].energy_j for k in keys])
    rho = spearmanr([zz.rows[k].energy_j for k in keys], [an.rows[k].energy_j for k in keys])[0]
    cells = [f"{np.median(r):.2f} ({r.min():.2f}-{r.max():.2f})" for r in (lat, en)]
    bits = [f"{_bits_ratio(lut, f, 4):.2f}, {_bits_ratio(lut, f, 2):.2f}"
            for f in ("latency_s", "energy_j") for lut in (zz, an)]
    print(f"| {name} | {len(keys)} | {cells[0]} | {cells[1]} | {rho:.3f} | {bits[0]} | {bits[1]} "
          f"| {bits[2]} | {bits[3]} |")


if __name__ == "__main__":
  main()
