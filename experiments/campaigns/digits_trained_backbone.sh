#!/usr/bin/env bash
# Issue 19's done-means on digits: a static network S, then a frozen exit search D and a
# warm-started joint search J (exits and bits, the backbone training) from it; the table
# (experiments/results/digits_trained_backbone/README.md) compares their search wall-clock
# with S's training and D's final exit with S's static network.
#
#   bash experiments/campaigns/digits_trained_backbone.sh
#
# Both runs start fresh (their dirs and a private feature cache are removed first), so the
# cache build is timed; run it on a quiet machine: the table records the load average.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${DNAS_EE_RUNS:-$HOME/dnas-ee-runs}/digits_trained_backbone
rm -rf "$RUNS" && mkdir -p "$RUNS"
export DNAS_EE_FEATURE_CACHE="$RUNS/features"
uptime > "$RUNS/load_before.txt"
dnas-ee run --config experiments/configs/digits.py --workdir "$RUNS/S" --no-progress \
  --config.method.name=static
dnas-ee run --config experiments/configs/digits.py --workdir "$RUNS/D" --no-progress \
  --config.init.backbone="$RUNS/S" --config.search.backbone=frozen
dnas-ee run --config experiments/configs/digits.py --workdir "$RUNS/J" --no-progress \
  --config.init.backbone="$RUNS/S" --config.search.backbone=train
uptime > "$RUNS/load_after.txt"
python experiments/analysis/digits_trained_backbone/make_table.py --runs "$RUNS" \
  --out experiments/results/digits_trained_backbone
