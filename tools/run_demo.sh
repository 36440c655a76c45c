#!/usr/bin/env bash
# Install mimlab with its tested dependency pins into .venv, then pretrain the demo MAE on the built-in dataset (CPU).
# Usage: bash tools/run_demo.sh [extra tools/train.py args]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -e .
.venv/bin/python tools/train.py configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py "$@"
