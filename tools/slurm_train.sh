#!/usr/bin/env bash
# Training on Slurm: PARTITION JOB_NAME CONFIG [WORK_DIR] [tools/train.py args]
# env: GPUS (8, the number of tasks), GPUS_PER_NODE (8; tasks per node), CPUS_PER_TASK (5), SRUN_ARGS, PYTHON (python)
# --gres=gpu:GPUS_PER_NODE is requested when GPUS_PER_NODE > 0, except on a partition that sinfo shows without a
# gpu GRES: there (and with GPUS_PER_NODE=0) srun gets no --gres. Tasks that see no GPU train on CPU with gloo.
set -x
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -n "$4" ] && [[ "$4" != -* ]]; then
    WORK_DIR_ARG="--work-dir=$4"
    PY_ARGS=("${@:5}")
else
    WORK_DIR_ARG=""
    PY_ARGS=("${@:4}")
fi
GRES=""
if [ "$GPUS_PER_NODE" -gt 0 ]; then
    NTASKS_PER_NODE=$GPUS_PER_NODE
    GRES="--gres=gpu:$GPUS_PER_NODE"
    # srun rejects --gres where the nodes have no gpu GRES (sinfo's %G is "(null)"), so leave it out there.
    # Without an answer from sinfo (not on PATH, unknown partition) --gres stays.
    PARTITION_GRES=$(sinfo -h -p "$PARTITION" -o '%G' 2>/dev/null || true)
    if [ -n "$PARTITION_GRES" ] && ! grep -q gpu <<<"$PARTITION_GRES"; then
        GRES=""
        echo "partition $PARTITION has no gpu GRES (sinfo: $PARTITION_GRES): srun without --gres" >&2
    fi
else
    NTASKS_PER_NODE=$GPUS
fi

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
