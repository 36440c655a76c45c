#!/usr/bin/env bash
# Evaluate on Slurm: PARTITION CONFIG CHECKPOINT [tools/test.py args]; env: GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS
set -e
PARTITION=$1
CFG=$2
CHECKPOINT=$3
TOOLS="$(cd "$(dirname "$0")/../.." && pwd)"
bash "$TOOLS/slurm_test.sh" "$PARTITION" "${JOB_NAME:-benchmark}" "$CFG" "$CHECKPOINT" "${@:4}"
