"""CIFAR-10 evidence, the 1-seed part: the sampled (single-path) relaxation.

Same config, trained backbone, budgets and calibration as cifar10_resnet20.py (read from
it); "dnas sampled" is the exits-only search on the frozen backbone with
search.mixture_mode='sampled'. Seed 0 only (the sweep format crosses every method with
every seed). Run into the same work dir as the 3-seed part
(experiments/campaigns/cifar10_resnet20.sh runs both, then one table of both:
experiments/analysis/cifar10_resnet20/make_table.py).
"""
import runpy
from pathlib import Path

_BASE = runpy.run_path(str(Path(__file__).with_name("cifar10_resnet20.py")))


def get_sweep():
  return dict(
      _BASE["common"](),
      methods={
          "dnas sampled": ["--config.method.name='dnas'", *_BASE["FROZEN"],
                           "--config.search.mixture_mode='sampled'"],
      },
      seeds=(0,))
