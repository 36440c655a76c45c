from .ema import WarmupExponentialMovingAverage
from .hooks import (
    AtomicCheckpointHook,
    ChannelsLastHook,
    DeferredRuntimeInfoHook,
    NonFiniteGuardHook,
    PreemptionHook,
    ReconstructionHook,
    SkippedImagesHook,
    StreamedDatasetHook,
    TrainStateHook,
)
from .knn import KNNHook, KNNTestLoop, extract_dataset_features, knn_accuracy, pool_features
from .launch import build_runner, merge_test_args, merge_train_args, resolve_amp, setup_distributed
from .loops import ExactResumeEpochBasedTrainLoop, ExactResumeIterBasedTrainLoop
from .optimizers import LARS, Lamb, LayerDecayOptimWrapperConstructor
from .parallel import FullyShardWrapper, ShardedCheckpointHook, ShardedEMAHook, apply_activation_checkpointing

__all__ = [
    'build_runner',
    'merge_test_args',
    'merge_train_args',
    'resolve_amp',
    'setup_distributed',
    'AtomicCheckpointHook',
    'ChannelsLastHook',
    'DeferredRuntimeInfoHook',
    'NonFiniteGuardHook',
    'PreemptionHook',
    'ReconstructionHook',
    'SkippedImagesHook',
    'StreamedDatasetHook',
    'TrainStateHook',
    'ExactResumeEpochBasedTrainLoop',
    'ExactResumeIterBasedTrainLoop',
    'KNNHook',
    'KNNTestLoop',
    'extract_dataset_features',
    'knn_accuracy',
    'pool_features',
    'LARS',
    'Lamb',
    'WarmupExponentialMovingAverage',
    'LayerDecayOptimWrapperConstructor',
    'FullyShardWrapper',
    'ShardedCheckpointHook',
    'ShardedEMAHook',
    'apply_activation_checkpointing',
]
