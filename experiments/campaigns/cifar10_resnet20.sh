#!/usr/bin/env bash
# The whole CIFAR-10 ResNet-20 campaign, resumable, seed by seed: seed s's trained backbone,
# then every member of seed s (seed 0 also the 1-seed sweep), so each seed's results exist
# as soon as its backbone does; finished members are skipped, an interrupted one resumes
# from its checkpoints; then the results tables. After seed 0, the frozen lambda sweep
# (experiments/sweeps/lambda_cifar10_frozen.py: does any lambda open an exit?).
#
#   nohup bash experiments/campaigns/cifar10_resnet20.sh > ~/dnas-ee-runs/cifar10_resnet20.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${DNAS_EE_RUNS:-$HOME/dnas-ee-runs}/cifar10_resnet20
for seed in 0 1 2; do
  SEEDS=$seed bash experiments/campaigns/cifar10_resnet20_backbones.sh
  DNAS_EE_SEEDS=$seed dnas-ee sweep --sweep experiments/sweeps/cifar10_resnet20.py \
    --workdir "$RUNS/sweep" --no-progress
  if [ "$seed" = 0 ]; then
    dnas-ee sweep --sweep experiments/sweeps/cifar10_resnet20_once.py --workdir "$RUNS/sweep" \
      --no-progress
  fi
  python experiments/analysis/cifar10_resnet20/make_table.py --workdir "$RUNS/sweep"
  python experiments/analysis/cifar10_resnet20/trained_backbone_pair.py --runs "$RUNS" \
    --out experiments/results/cifar10_resnet20/trained_backbone_pair.md
  if [ "$seed" = 0 ]; then
    LAMBDA_RUNS=${DNAS_EE_RUNS:-$HOME/dnas-ee-runs}/lambda_cifar10_frozen
    dnas-ee sweep --sweep experiments/sweeps/lambda_cifar10_frozen.py --workdir "$LAMBDA_RUNS" \
      --no-progress
    python -m dnas_ee.sweep.front --workdir "$LAMBDA_RUNS" \
      --out experiments/results/lambda_cifar10_frozen
  fi
done
