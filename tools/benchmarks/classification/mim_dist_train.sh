#!/usr/bin/env bash
# Linear probe / fine-tune a pretrained encoder: CONFIG PRETRAIN [tools/train.py args]
# env: GPUS (8), NNODES, NODE_RANK, MASTER_ADDR, PORT (passed to tools/dist_train.sh)
set -e
CFG=$1
PRETRAIN=$2  # a pretraining checkpoint (full algorithm, backbone.* keys) or a backbone-only one
GPUS=${GPUS:-8}
if [ -z "$PRETRAIN" ] || { [ ! -f "$PRETRAIN" ] && [[ "$PRETRAIN" != *://* ]]; }; then
    echo "mim_dist_train.sh: PRETRAIN '$PRETRAIN' is not a checkpoint file or URL." >&2
    echo "usage: GPUS=8 bash $0 CONFIG PRETRAIN_CHECKPOINT [train.py args]  (the GPU count goes in GPUS)" >&2
    exit 2
fi
TOOLS="$(cd "$(dirname "$0")/../.." && pwd)"
bash "$TOOLS/dist_train.sh" "$CFG" "$GPUS" \
    --cfg-options model.backbone.init_cfg.type=Pretrained \
    model.backbone.init_cfg.checkpoint="$PRETRAIN" \
    model.backbone.init_cfg.prefix="backbone." \
    "${@:3}"
