#!/usr/bin/env bash
# Linear probe / fine-tune on Slurm: PARTITION CONFIG PRETRAIN [tools/train.py args]
# env: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS, JOB_NAME (benchmark)
set -e
PARTITION=$1
CFG=$2
PRETRAIN=$3
if [ -z "$PRETRAIN" ] || { [ ! -f "$PRETRAIN" ] && [[ "$PRETRAIN" != *://* ]]; }; then
    echo "mim_slurm_train.sh: PRETRAIN '$PRETRAIN' is not a checkpoint file or URL." >&2
    echo "usage: bash $0 PARTITION CONFIG PRETRAIN_CHECKPOINT [train.py args]" >&2
    exit 2
fi
TOOLS="$(cd "$(dirname "$0")/../.." && pwd)"
bash "$TOOLS/slurm_train.sh" "$PARTITION" "${JOB_NAME:-benchmark}" "$CFG" \
    --cfg-options model.backbone.init_cfg.type=Pretrained \
    model.backbone.init_cfg.checkpoint="$PRETRAIN" \
    model.backbone.init_cfg.prefix="backbone." \
    "${@:4}"
