#!/usr/bin/env bash
# The trained static ResNet-20 backbones of the CIFAR-10 evidence, one per seed, shared by
# every member of that seed through init.backbone (experiments/sweeps/cifar10_resnet20.py).
#
# Budget: 10 epochs of the 37,500 weight-train images at batch 128 (2,930 steps),
# SGD-momentum, lr 0.1 cosine to 0, 8-bit QAT. The architecture-val split is held out
# (retrain.train_on_val=False), so the budget is judged on it and the frozen-backbone exit
# search scores exits on images the backbone never trained on.
#
# Resumable: a finished seed is skipped; a started one resumes from its last checkpoint
# (every 500 steps) with the config saved in its run dir (`dnas-ee run --workdir`), so a
# later change of the library's defaults cannot make it refuse its own config.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${DNAS_EE_RUNS:-$HOME/dnas-ee-runs}/cifar10_resnet20
# XNNPACK convolutions: -19% per ResNet-20 step in the speed benchmarks (docs/benchmarks.md).
export XLA_FLAGS="${XLA_FLAGS:-} --xla_cpu_use_xnnpack=true"
for seed in ${SEEDS:-0 1 2}; do
  dir="$RUNS/backbone_s$seed"
  if [ -f "$dir/summary.json" ]; then
    echo "backbone seed $seed: finished ($dir)"
  elif [ -f "$dir/config.json" ]; then
    dnas-ee run --workdir "$dir" --no-progress
  else
    dnas-ee run --config experiments/configs/cifar10_resnet20.py --workdir "$dir" --no-progress \
      --config.method.name=static --config.seed=$seed \
      --config.data.dir="'$PWD/../shared/data/cifar10'" --config.data.limit_train=0 \
      --config.retrain.steps=2930 --config.retrain.batch_size=128 --config.retrain.lr=0.1 \
      --config.retrain.train_on_val=False
  fi
done
