"""Ablation: how the derived early-exit network is retrained (docs/design.md's known trap), 3 seeds.

Every member is a whole run (search, derive, retrain, calibrate, evaluate) of the digits
default, so the spread over seeds covers the search too; results and reading in
experiments/results/exit_training/.

    dnas-ee sweep --sweep experiments/sweeps/exit_training.py --workdir runs/exit_training
    dnas-ee table --workdir runs/exit_training
"""


def get_sweep():
  return dict(
      configs={"digits": "experiments/configs/digits.py"},
      settings={
          "equal weights": ["--config.retrain.distill_weight=0.0"],
          "exit weight 0.3": ["--config.retrain.distill_weight=0.0",
                              "--config.retrain.exit_weight=0.3"],
          "gradient scale 0.25": ["--config.retrain.distill_weight=0.0",
                                  "--config.retrain.exit_grad_scale=0.25"],
          "self-distillation (default)": [],
          "grad scale 0.25 + distillation": ["--config.retrain.exit_grad_scale=0.25"],
      },
      methods=["dnas"],
      seeds=(0, 1, 2),
      cost="edp")
