#!/usr/bin/env bash
# A non-editable install works from any directory: build and install the package
# into a fresh venv (dependencies from the system site-packages, the package itself
# copied, not linked), then run the digits test config from an empty temp dir, where
# only the installed package data can supply the accelerator descriptions and LUTs.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python -m venv --system-site-packages "$tmp/venv"
"$tmp/venv/bin/pip" install -q --no-deps "$repo"
cd "$tmp"
"$tmp/venv/bin/python" - "$tmp/venv" <<'PY'
import sys
import dnas_ee
from dnas_ee.hw import hwmodels_dir, list_accelerators
assert dnas_ee.__file__.startswith(sys.argv[1]), f"imported {dnas_ee.__file__}, not the installed copy"
assert str(hwmodels_dir()).startswith(sys.argv[1]), hwmodels_dir()
assert "edge_tpu_like" in list_accelerators(), list_accelerators()
print("installed:", dnas_ee.__file__, "| hwmodels:", hwmodels_dir())
PY
"$tmp/venv/bin/dnas-ee" --version
"$tmp/venv/bin/dnas-ee" run --config "$repo/experiments/configs/digits.py:tiny" \
  --workdir "$tmp/run" --no-progress
test -f "$tmp/run/summary.json"
echo "install check: ok"
