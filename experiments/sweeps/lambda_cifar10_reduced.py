"""The lambda sweep on CIFAR-10 at reduced scale (cifar10_resnet20.py:reduced: 10k training
images, exits after blocks 2/4/6, 300 search steps; EDP on edge_tpu_like); each point the
derived architecture inside the trained supernet, on the test split.

    dnas-ee sweep --sweep experiments/sweeps/lambda_cifar10_reduced.py --workdir runs/lambda_cifar
    python -m dnas_ee.sweep.front --workdir runs/lambda_cifar --out experiments/results/lambda_cifar10_reduced
"""
from dnas_ee.sweep.spec import lambda_settings

LAMBDAS = (0.0, 0.1, 0.3, 1.0, 3.0)


def get_sweep():
  return dict(
      configs={"cifar10 reduced": "experiments/configs/cifar10_resnet20.py:reduced"},
      settings=lambda_settings(LAMBDAS),
      methods={"dnas": []},
      seeds=(0,),
      cost="edp",
      stages=("search", "derive", "inherited"))
