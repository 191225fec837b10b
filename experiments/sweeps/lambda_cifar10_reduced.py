"""The lambda sweep on CIFAR-10 at reduced scale (cifar10_resnet20.py:reduced: 10k training
images, exits after blocks 2/4/6; here 150 search steps, 40 of warm-up, so that five points
fit an hour of the shared 2-core machine; EDP on edge_tpu_like); each point the derived
architecture inside the trained supernet, on the test split. Nothing converges at this
scale: it shows whether the decisions respond to lambda on real images.

    dnas-ee sweep --sweep experiments/sweeps/lambda_cifar10_reduced.py --workdir runs/lambda_cifar
    python -m dnas_ee.sweep.front --workdir runs/lambda_cifar --out experiments/results/lambda_cifar10_reduced
"""
from dnas_ee.sweep.spec import lambda_settings

LAMBDAS = (0.3, 3.0, 0.0, 1.0, 0.1)   # run in this order (the front sorts by lambda)


def get_sweep():
  return dict(
      configs={"cifar10 reduced": "experiments/configs/cifar10_resnet20.py:reduced"},
      overrides=["--config.search.steps=150", "--config.search.warmup_steps=40",
                 "--config.search.log_every=10", "--config.search.checkpoint_every=50"],
      settings=lambda_settings(LAMBDAS),
      methods={"dnas": []},
      seeds=(0,),
      cost="edp",
      stages=("search", "derive", "inherited"))
