from .knn import KNNHook, KNNTestLoop, extract_dataset_features, knn_accuracy, pool_features
from .launch import build_runner, merge_test_args, merge_train_args, resolve_amp, setup_distributed
from .optimizers import *  # noqa: F401,F403

__all__ = [
    'build_runner',
    'merge_test_args',
    'merge_train_args',
    'resolve_amp',
    'setup_distributed',
    'KNNHook',
    'KNNTestLoop',
    'extract_dataset_features',
    'knn_accuracy',
    'pool_features',
]
from .hooks import *  # noqa: E402,F401,F403
from .loops import EpochBasedTrainLoop, IterBasedTrainLoop  # noqa: E402,F401
