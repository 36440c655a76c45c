#!/usr/bin/env bash
# Training on Slurm: PARTITION JOB_NAME CONFIG [WORK_DIR] [tools/train.py args]
# env: GPUS (8, the number of tasks), GPUS_PER_NODE (8; tasks per node), CPUS_PER_TASK (5), SRUN_ARGS, PYTHON (.venv/bin/python if present, else python)
# --gres: see tools/slurm_resources.sh (left out on partitions without GPUs). Tasks that see no GPU use gloo on CPU.
set -x
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# the checkout's .venv (where tools/run_demo.sh installs) unless PYTHON names another interpreter
if [ -z "$PYTHON" ] && [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; fi
if [ -n "$4" ] && [[ "$4" != -* ]]; then
    WORK_DIR_ARG="--work-dir=$4"
    PY_ARGS=("${@:5}")
else
    WORK_DIR_ARG=""
    PY_ARGS=("${@:4}")
fi
source "$ROOT/tools/slurm_resources.sh"

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    $GRES \
    --ntasks=$GPUS \
    --ntasks-per-node=$NTASKS_PER_NODE \
    --cpus-per-task=$CPUS_PER_TASK \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    ${PYTHON:-python} -u "$ROOT/tools/train.py" "$CONFIG" $WORK_DIR_ARG --launcher=slurm "${PY_ARGS[@]}"
