"""Does the frozen-backbone exit search open exits on CIFAR-10 at any lambda? (issue 18's
CIFAR-10 lambda sweep, on the campaign's trained ResNet-20 instead of a from-scratch
reduced supernet).

The campaign's `dnas exits-only` member (seed 0, lambda ramped 0 -> 0.5, 1,500 steps) was
closing all 8 gates together at step 700 (gates 0.09-0.10, thresholds up from 0.8 to
0.92-0.98: its search_metrics.jsonl in the work dir), while the hand-placed exit after block
8, calibrated, cuts EDP by 10% at 0.13 points (experiments/results/cifar10_resnet20/README.md).
This sweep holds lambda constant at each point of LAMBDAS, on seed 0's backbone and cached
features, with the space, data and cost of cifar10_resnet20.py (read from it) and half its
search budget (750 steps, 187 of warm-up: about 45 min each at the 3.5 s a step the
campaign's member took beside other work), so that three points fit one session. Each
point is the derived architecture inside the trained supernet (the `inherited` stage, test
split), whose static reference is the backbone itself.

    dnas-ee sweep --sweep experiments/sweeps/lambda_cifar10_frozen.py \\
      --workdir ~/dnas-ee-runs/lambda_cifar10_frozen
    python -m dnas_ee.sweep.front --workdir ~/dnas-ee-runs/lambda_cifar10_frozen \\
      --out experiments/results/lambda_cifar10_frozen
"""
import runpy
from pathlib import Path

from dnas_ee.sweep.spec import lambda_settings

_BASE = runpy.run_path(str(Path(__file__).with_name("cifar10_resnet20.py")))
LAMBDAS = (2.0, 8.0, 0.5)   # run in this order (the front sorts by lambda)
STEPS = 750


def get_sweep():
  frozen = [o for o in _BASE["FROZEN"] if "search.steps" not in o and "warmup_steps" not in o]
  return dict(
      _BASE["common"](),
      settings=lambda_settings(LAMBDAS),
      methods={"dnas exits-only": ["--config.method.name='dnas'", *frozen,
                                   f"--config.search.steps={STEPS}",
                                   f"--config.search.warmup_steps={STEPS // 4}",
                                   "--config.search.log_every=50"]},
      seeds=(0,),
      stages=("search", "derive", "inherited"))
