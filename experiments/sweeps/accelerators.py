"""Digits searched against three accelerators' energy-delay product, 3 seeds.

Every member is a whole run, so the table has accuracy and measured costs with their
spread over seeds; results and reading in experiments/results/accelerators/.

    dnas-ee sweep --sweep experiments/sweeps/accelerators.py --workdir runs/accelerators
    dnas-ee table --workdir runs/accelerators
"""


def get_sweep():
  return dict(
      configs={acc: f"experiments/configs/digits_hw.py:{acc}"
               for acc in ("edge_tpu_like", "eyeriss_like", "quad_core_edge_tpu_like")},
      methods=["dnas"],
      seeds=(0, 1, 2),
      cost="edp")
