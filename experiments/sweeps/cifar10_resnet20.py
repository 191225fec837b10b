"""CIFAR-10 evidence (issue 14), the 3-seed part: ResNet-20, every exit position, EDP on edge_tpu_like.

Protocol (experiments/results/cifar10_resnet20/README.md has the why and the arithmetic):
the full CIFAR-10 training set (../shared/data/cifar10, fixed seeded splits: 37,500
train / 10,000 architecture-val / 2,500 calibration; the official test set reports
only); ResNet-20 (3x3 basic blocks, widths 16/32/64) with an exit possible after each
of blocks 1-8; the default branch space and bit widths (2/4/8); searched against EDP
on edge_tpu_like (the shipped LUT). Every method retrains with the same schedule,
data and augmentation (pad 4 + crop, flip): RETRAIN_EPOCHS of train + val at batch
128, SGD-momentum, cosine from 0.1. The dnas search, and the supernet that random
search and NSGA-II score candidates with, run SEARCH_STEPS at batch 64.

Members: static, hand_placed and dnas (softmax mixtures, the default) x seeds 0, 1, 2.
hand_placed (an exit after every block, branch conv3_s2_x1, 8 bits) is calibrated to
the EDP budget the dnas target asks for (HAND_PLACED_EDP_BUDGET x the static EDP, on
the calibration split); the others with the accuracy floor (calibrate.max_drop points
below the network's own final exit: the library has no floor relative to the static
network yet, see the README). The 1-seed members (random, NSGA-II, dnas sampled) are
in cifar10_resnet20_once.py: the sweep format crosses every method with every seed.

    nohup dnas-ee sweep --sweep experiments/sweeps/cifar10_resnet20.py \\
      --workdir runs/cifar10_resnet20 > runs/cifar10_resnet20.log 2>&1 &
"""
TRAIN_IMAGES = 37_500 + 10_000   # the retraining sees train + architecture-val (retrain.train_on_val)
RETRAIN_EPOCHS = 10
RETRAIN_BATCH = 128
RETRAIN_STEPS = round(RETRAIN_EPOCHS * TRAIN_IMAGES / RETRAIN_BATCH / 100) * 100   # 3700
SEARCH_STEPS = 1500               # batch 64: 2.6 passes over the 37,500 training images
SEARCH_WARMUP = SEARCH_STEPS // 4  # the shipped config's ratio (1500 of 6000)
HAND_PLACED_EDP_BUDGET = 0.6       # the dnas target: at least 40% lower EDP than static
SCORE_SAMPLES = 1000               # val images per random / NSGA-II candidate (weight sharing)


def common():
  """The config, overrides and cost axis shared with cifar10_resnet20_once.py."""
  return dict(
      configs={"cifar10 resnet20": "experiments/configs/cifar10_resnet20.py"},
      overrides=[
          "--config.data.dir='../shared/data/cifar10'", "--config.data.limit_train=0",
          "--config.space.exit_positions=(1, 2, 3, 4, 5, 6, 7, 8)",
          "--config.hw.accelerator='edge_tpu_like'", "--config.hw.objective='edp'",
          f"--config.search.steps={SEARCH_STEPS}", f"--config.search.warmup_steps={SEARCH_WARMUP}",
          f"--config.retrain.steps={RETRAIN_STEPS}", f"--config.retrain.batch_size={RETRAIN_BATCH}",
          "--config.retrain.lr=0.1",
          "--config.calibrate.mode='accuracy_floor'", "--config.calibrate.max_drop=0.5",
          f"--config.method.score_samples={SCORE_SAMPLES}"],
      cost="edp")


def get_sweep():
  return dict(
      common(),
      methods={
          "static": [],
          "hand_placed": ["--config.calibrate.mode='budget'",
                          f"--config.calibrate.budget={HAND_PLACED_EDP_BUDGET}"],
          "dnas": [],
      },
      seeds=(0, 1, 2))
