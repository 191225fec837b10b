#!/usr/bin/env bash
# GPU check of dnas-ee in under 9 minutes: the search-step benchmark (softmax and sampled
# mixtures; digits, CIFAR-10 ResNet-20 with 8 exits, CIFAR-10 MobileNetV2) and a short
# CIFAR-10 pipeline (ResNet-20 `reduced`, shortened), JSON under experiments/results/.
#
#   experiments/benchmarks/device_check.sh            # on the GPU machine, from anywhere
#   experiments/benchmarks/device_check.sh --prepare  # here, with network: wheels the GPU
#                                                     # image lacks, into .device_wheels/
#                                                     # (git-ignored: carry it to the machine)
#
# Installing: if the machine's python already has a GPU jax (the lent H200 image holds
# jax 0.11 with CUDA 13, and no network), the package runs from the source tree
# (PYTHONPATH) and only the missing pure dependencies are installed from .device_wheels/
# (carry it). Otherwise it installs the package with a CUDA jax in the pinned range:
#   pip install -e . 'jax[cuda12]>=0.4.35,<0.11'
# Outputs: experiments/results/search_step_gpu.json, device_cifar10_reduced.json, and the
# logs; copied to $OUT too when it is set (the device tool's folder that comes back).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
RESULTS="${RESULTS:-experiments/results}"
WHEELS="$ROOT/.device_wheels"
# Dependencies the GPU image lacks (its package list: ml_collections, and pymoo with those of
# its own dependencies it does not hold); numpy, scipy, matplotlib, pyyaml, absl are there.
MISSING="ml_collections pymoo autograd cma alive-progress about-time graphemeu deprecated dill"

if [[ "${1:-}" == "--prepare" ]]; then
  mkdir -p "$WHEELS"
  "$PY" -m pip download -d "$WHEELS" --no-deps --only-binary=:all: --python-version 3.12 \
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 $MISSING
  du -sh "$WHEELS"
  exit 0
fi

start=$(date +%s)
mkdir -p "$RESULTS"
export DNAS_EE_COMPILATION_CACHE="${DNAS_EE_COMPILATION_CACHE:-/tmp/dnas_ee_jax_cache}"
if "$PY" -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" 2>/dev/null; then
  echo "using the installed GPU jax: $("$PY" -c 'import jax; print(jax.__version__, jax.devices())')"
  if [[ -d "$WHEELS" ]]; then
    "$PY" -m pip install -q --no-index --find-links "$WHEELS" $MISSING || true
  fi
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
else
  "$PY" -m pip install -q -e . 'jax[cuda12]>=0.4.35,<0.11'
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true

# 1. The search-step benchmark: ~5.5 minutes at most; the JSON is rewritten after every
#    space, so a space cut off by the timeout leaves the others.
timeout 330 "$PY" experiments/benchmarks/search_step.py \
    --spaces digits,cifar10_resnet20,cifar10_mbv2 --modes softmax,sampled --iters 10 \
    --config.hw.accelerator= --config.hw.objective=macs \
    --out "$RESULTS/search_step_gpu.json" 2>&1 | tee "$RESULTS/search_step_gpu.log"
echo "benchmark: rc=${PIPESTATUS[0]} after $(( $(date +%s) - start )) s"

# 2. A short CIFAR-10 pipeline (search, derive, retrain, calibrate, evaluate) on the shared
#    archive: the reduced ResNet-20 run, shortened to fit what is left of the 9 minutes.
WORK="$(mktemp -d)/cifar10_reduced"
timeout 170 "$PY" -m dnas_ee.cli run --config experiments/configs/cifar10_resnet20.py:reduced \
    --workdir "$WORK" --no-progress --config.data.dir="$ROOT/../shared/data/cifar10" \
    --config.search.steps=200 --config.search.warmup_steps=50 --config.retrain.steps=300 \
    2>&1 | tee "$RESULTS/device_cifar10_reduced.log"
echo "pipeline: rc=${PIPESTATUS[0]} after $(( $(date +%s) - start )) s"
"$PY" - "$WORK" "$RESULTS/device_cifar10_reduced.json" <<'EOF'
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
summary = json.loads((work / "summary.json").read_text()) if (work / "summary.json").exists() else None
metrics = [json.loads(l) for l in (work / "search_metrics.jsonl").read_text().splitlines() if l.strip()] \
    if (work / "search_metrics.jsonl").exists() else []
out.write_text(json.dumps(dict(summary=summary, search_metrics_tail=metrics[-3:]), indent=2))
print(f"wrote {out} (summary: {summary is not None})")
EOF

if [[ -n "${OUT:-}" ]]; then
  cp "$RESULTS"/search_step_gpu.json "$RESULTS"/search_step_gpu.log \
     "$RESULTS"/device_cifar10_reduced.json "$RESULTS"/device_cifar10_reduced.log "$OUT"/ 2>/dev/null
fi
echo "device check done in $(( $(date +%s) - start )) s"
