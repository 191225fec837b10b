"""Does the search respond to the cost? Digits (the default config, EDP on edge_tpu_like),
one search per lambda, each point the derived architecture inside the trained supernet
(inherited weights, zero temperature; dnas_ee.stages.inherited), on the test split.

    dnas-ee sweep --sweep experiments/sweeps/lambda_digits.py --workdir runs/lambda_digits
    python -m dnas_ee.sweep.front --workdir runs/lambda_digits --out experiments/results/lambda_digits
"""
from dnas_ee.sweep.spec import lambda_settings

LAMBDAS = (0.3, 1.0, 3.0, 0.1, 0.0)   # run in this order (the front sorts by lambda)


def get_sweep():
  return dict(
      configs={"digits": "experiments/configs/digits.py"},
      settings=lambda_settings(LAMBDAS),
      methods={"dnas": []},
      seeds=(0,),
      cost="edp",
      stages=("search", "derive", "inherited"))
