#!/usr/bin/env bash
# Linear probe / fine-tune on Slurm: PARTITION CONFIG PRETRAIN [tools/train.py args]
# env: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS, JOB_NAME (benchmark)
set -e
PARTITION=$1
CFG=$2
PRETRAIN=$3
TOOLS="$(cd "$(dirname "$0")/../.." && pwd)"
bash "$TOOLS/slurm_train.sh" "$PARTITION" "${JOB_NAME:-benchmark}" "$CFG" \
    --cfg-options model.backbone.init_cfg.type=Pretrained \
    model.backbone.init_cfg.checkpoint="$PRETRAIN" \
    model.backbone.init_cfg.prefix="backbone." \
    "${@:4}"
