"""CIFAR-10 evidence (issue 14), the 1-seed part: random search, NSGA-II and dnas sampled.

Same config, schedules and calibration as cifar10_resnet20.py (read from it). random
and NSGA-II (pymoo) score method.evaluations = 200 candidates each (NSGA-II:
population 20, 10 generations) with a supernet trained for the same SEARCH_STEPS as the
dnas search, its architecture frozen at the uniform init, each candidate on
SCORE_SAMPLES architecture-val images; "dnas sampled" is the single-path relaxation
(search.mixture_mode=sampled). Seed 0 only (the issue asks for at least one).

Run into the same work dir as the 3-seed part; then one table of both:

    nohup dnas-ee sweep --sweep experiments/sweeps/cifar10_resnet20_once.py \\
      --workdir runs/cifar10_resnet20 > runs/cifar10_resnet20_once.log 2>&1 &
    python experiments/analysis/cifar10_resnet20/make_table.py --workdir runs/cifar10_resnet20
"""
import runpy
from pathlib import Path

_BASE = runpy.run_path(str(Path(__file__).with_name("cifar10_resnet20.py")))


def get_sweep():
  return dict(
      _BASE["common"](),
      methods={
          "random": [],
          "evolutionary": [],
          "dnas sampled": ["--config.method.name='dnas'", "--config.search.mixture_mode='sampled'"],
      },
      seeds=(0,))
