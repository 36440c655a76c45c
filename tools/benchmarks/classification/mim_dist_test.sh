#!/usr/bin/env bash
# Evaluate a linear-probe / fine-tune checkpoint: CONFIG CHECKPOINT [tools/test.py args]; env: GPUS (8), PORT, ...
set -e
CFG=$1
CHECKPOINT=$2
GPUS=${GPUS:-8}
TOOLS="$(cd "$(dirname "$0")/../.." && pwd)"
bash "$TOOLS/dist_test.sh" "$CFG" "$CHECKPOINT" "$GPUS" "${@:3}"
