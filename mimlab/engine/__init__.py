from .knn import KNNHook, KNNTestLoop, extract_dataset_features, knn_accuracy, pool_features
from .optimizers import *  # noqa: F401,F403

__all__ = ['KNNHook', 'KNNTestLoop', 'extract_dataset_features', 'knn_accuracy', 'pool_features']
