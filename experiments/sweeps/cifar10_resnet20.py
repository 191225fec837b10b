"""CIFAR-10 evidence, 3 seeds: every method on the same trained ResNet-20 per seed.

Protocol (experiments/results/cifar10_resnet20/README.md has the why): the full CIFAR-10
training set (../shared/data/cifar10, fixed seeded splits: 37,500 weight-train / 10,000
architecture-val / 2,500 calibration; the official test set reports only); ResNet-20
(3x3 basic blocks, widths 16/32/64), an exit possible after each of blocks 1-8; EDP on
edge_tpu_like (the shipped LUT).

Every member of seed s starts from the trained static backbone of seed s
(BACKBONES/backbone20_s{seed}: 20 epochs of 8-bit QAT on the weight-train split in two
cosine cycles, experiments/campaigns/cifar10_resnet20_backbones.sh) and gets the same fine-tuning
budget (FINETUNE_STEPS at batch 128, SGD-momentum, cosine from FINETUNE_LR):

- static: the backbone fine-tuned for the same budget (the same total training steps
  as every other member: backbone training + fine-tuning);
- hand_placed: an exit after every block 1-8, branch conv3_s2_x1, 8 bits, trained on
  the frozen backbone (its final exit is the static backbone's);
- dnas exits-only: the default search on the frozen backbone, exits, branch ops and
  thresholds only, 8-bit branches (space.bits=(8,));
- random / evolutionary (NSGA-II, pymoo): the same space as exits-only, candidates
  scored on the frozen-backbone supernet trained with its architecture frozen uniform;
  random also fine-tunes 6 of its scored candidates (one-shot validity: Kendall tau);
- dnas joint: exits and bits (2/4/8) searched together from the warm start;
- hand_placed matched-bits: hand_placed's exits at the bits the joint search chose (the
  joint search shared, derive.exits='hand_placed');
- dnas bits-only: the backbone's bits (2/4/8) searched from the warm start, no exit.

Calibration: the same rule for every member, accuracy_floor 0.5 points below the static
network (calibrate.reference='static': for frozen members the backbone itself, for the
others the backbone fine-tuned alike), on the calibration split; the whole front is kept.

    nohup dnas-ee sweep --sweep experiments/sweeps/cifar10_resnet20.py \\
      --workdir ~/dnas-ee-runs/cifar10_resnet20/sweep \\
      > ~/dnas-ee-runs/cifar10_resnet20/sweep.log 2>&1 &
"""
import os

BACKBONES = os.path.expanduser(os.environ.get("DNAS_EE_RUNS", "~/dnas-ee-runs")
                               ) + "/cifar10_resnet20"
# DNAS_EE_SEEDS (e.g. "0"): a subset of the seeds, so the campaign can run each seed's
# members as soon as its backbone exists (member dirs do not depend on the subset).
SEEDS = tuple(int(s) for s in os.environ.get("DNAS_EE_SEEDS", "0,1,2").split(","))
FINETUNE_STEPS = 880       # 3 epochs of the 37,500 weight-train images at batch 128
FINETUNE_LR = 0.01         # a tenth of the backbone's: fine-tuning a trained network
SEARCH_STEPS = 1500        # frozen searches (branches on cached features): batch 64
JOINT_SEARCH_STEPS = 600   # joint / bits-only searches (the whole supernet): ~1 epoch
SCORE_SAMPLES = 2000       # val images per random / NSGA-II candidate (weight sharing)
VALIDITY_CANDIDATES = 6    # random candidates fine-tuned to check the supernet's ranking

FROZEN = ["--config.search.backbone='frozen'", "--config.space.bits=(8,)",
          f"--config.search.steps={SEARCH_STEPS}", f"--config.search.warmup_steps={SEARCH_STEPS // 4}"]
JOINT = ["--config.search.backbone='train'",
         f"--config.search.steps={JOINT_SEARCH_STEPS}",
         f"--config.search.warmup_steps={JOINT_SEARCH_STEPS // 6}"]


def common():
  """The config, overrides and cost axis shared with cifar10_resnet20_once.py."""
  return dict(
      configs={"cifar10 resnet20": "experiments/configs/cifar10_resnet20.py"},
      overrides=[
          "--config.data.dir='../shared/data/cifar10'", "--config.data.limit_train=0",
          "--config.space.exit_positions=(1, 2, 3, 4, 5, 6, 7, 8)",
          "--config.hw.accelerator='edge_tpu_like'", "--config.hw.objective='edp'",
          f"--config.init.backbone='{BACKBONES}/backbone20_s{{seed}}'",
          f"--config.retrain.steps={FINETUNE_STEPS}", "--config.retrain.batch_size=128",
          f"--config.retrain.lr={FINETUNE_LR}", "--config.retrain.train_on_val=False",
          "--config.calibrate.mode='accuracy_floor'", "--config.calibrate.max_drop=0.5",
          "--config.calibrate.reference='static'",
          f"--config.method.score_samples={SCORE_SAMPLES}"],
      cost="edp")


def get_sweep():
  return dict(
      common(),
      methods={
          "static": ["--config.search.backbone='train'"],
          "hand_placed": FROZEN,
          "dnas exits-only": ["--config.method.name='dnas'", *FROZEN],
          # 6 of its scored candidates fine-tuned: the supernet's ranking against fine-tuning
          # (Kendall tau, one_shot_validity.json): how far weight-sharing scores can be trusted.
          "random": [*FROZEN, f"--config.method.validity_candidates={VALIDITY_CANDIDATES}"],
          "evolutionary": FROZEN,
          "dnas joint": ["--config.method.name='dnas'", *JOINT],
          "hand_placed matched-bits": ["--config.method.name='dnas'", *JOINT,
                                       "--config.derive.exits='hand_placed'"],
          "dnas bits-only": ["--config.method.name='dnas'", *JOINT,
                             "--config.space.exit_positions=()"],
      },
      seeds=SEEDS)
