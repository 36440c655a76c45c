#!/usr/bin/env bash
# Linear probe / fine-tune a pretrained encoder: CONFIG PRETRAIN [tools/train.py args]
# env: GPUS (8), NNODES, NODE_RANK, MASTER_ADDR, PORT (passed to tools/dist_train.sh)
set -e
CFG=$1
PRETRAIN=$2  # a pretraining checkpoint (full algorithm, backbone.* keys) or a backbone-only one
GPUS=${GPUS:-8}
TOOLS="$(cd "$(dirname "$0")/../.." && pwd)"
bash "$TOOLS/dist_train.sh" "$CFG" "$GPUS" \
    --cfg-options model.backbone.init_cfg.type=Pretrained \
    model.backbone.init_cfg.checkpoint="$PRETRAIN" \
    model.backbone.init_cfg.prefix="backbone." \
    "${@:3}"
