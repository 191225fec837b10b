#!/usr/bin/env bash
# The whole CIFAR-10 ResNet-20 campaign, resumable: the three trained backbones, then every
# member of the 3-seed sweep and of the 1-seed sweep (finished members are skipped, an
# interrupted one resumes from its checkpoints), then the results tables.
#
#   nohup bash experiments/campaigns/cifar10_resnet20.sh > ~/dnas-ee-runs/cifar10_resnet20.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${DNAS_EE_RUNS:-$HOME/dnas-ee-runs}/cifar10_resnet20
bash experiments/campaigns/cifar10_resnet20_backbones.sh
dnas-ee sweep --sweep experiments/sweeps/cifar10_resnet20.py --workdir "$RUNS/sweep" --no-progress
dnas-ee sweep --sweep experiments/sweeps/cifar10_resnet20_once.py --workdir "$RUNS/sweep" --no-progress
python experiments/analysis/cifar10_resnet20/make_table.py --workdir "$RUNS/sweep"
