#!/usr/bin/env bash
# The A2MIM README's (openmixup's) fine-tuning launcher: CONFIG PRETRAIN [tools/train.py args], 8 processes unless
# GPUS says otherwise; env PORT, NNODES, NODE_RANK, MASTER_ADDR as tools/dist_train.sh. Upstream config paths
# (configs/openmixup/..., configs/benchmarks/classification/...) are mapped to mimlab's recipes by tools/train.py.
GPUS=${GPUS:-8} exec bash "$(dirname "$0")/benchmarks/classification/mim_dist_train.sh" "$@"
