# Sourced by slurm_train.sh and slurm_test.sh: sets NTASKS_PER_NODE and GRES from PARTITION, GPUS, GPUS_PER_NODE.
# --gres=gpu:GPUS_PER_NODE is requested when GPUS_PER_NODE > 0, except on a partition that sinfo shows without a gpu
# GRES: srun rejects --gres there (sinfo's %G is "(null)"). Without an answer from sinfo (not on PATH, unknown
# partition) --gres stays. GPUS_PER_NODE=0 means CPU-only nodes: GPUS tasks on one node, no --gres.
GRES=""
if [ "$GPUS_PER_NODE" -gt 0 ]; then
    NTASKS_PER_NODE=$GPUS_PER_NODE
    GRES="--gres=gpu:$GPUS_PER_NODE"
    PARTITION_GRES=$(sinfo -h -p "$PARTITION" -o '%G' 2>/dev/null || true)
    if [ -n "$PARTITION_GRES" ] && ! grep -q gpu <<<"$PARTITION_GRES"; then
        GRES=""
        echo "partition $PARTITION has no gpu GRES (sinfo: $PARTITION_GRES): srun without --gres" >&2
    fi
else
    NTASKS_PER_NODE=$GPUS
fi
