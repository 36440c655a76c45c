"""How a model is wrapped to run on several processes beyond DDP: FSDP2 sharding, sharded checkpoints, and
activation checkpointing applied from outside the model files."""

from .activation_checkpointing import DEFAULT_BLOCKS, apply_activation_checkpointing, find_blocks
from .checkpoint import (
    ShardedCheckpointHook,
    load_full_state,
    load_sharded_state,
    merge_sharded_checkpoint,
    save_sharded_state,
    shard_dir_of,
)
from .ema import ShardedEMAHook, local_view
from .fsdp import CheckpointedDDP, FullyShardWrapper, gathered_root, is_sharded, local_state_bytes

__all__ = [
    'DEFAULT_BLOCKS',
    'CheckpointedDDP',
    'FullyShardWrapper',
    'ShardedCheckpointHook',
    'ShardedEMAHook',
    'apply_activation_checkpointing',
    'find_blocks',
    'gathered_root',
    'is_sharded',
    'load_full_state',
    'load_sharded_state',
    'local_state_bytes',
    'local_view',
    'merge_sharded_checkpoint',
    'save_sharded_state',
    'shard_dir_of',
]
