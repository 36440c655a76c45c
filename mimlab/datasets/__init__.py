from .builtin import BuiltinDataset, write_builtin_dataset
from .collate import default_collate
from .imagenet import CustomDataset, ImageNet
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BuiltinDataset',
    'write_builtin_dataset',
    'CustomDataset',
    'ImageNet',
    'default_collate',
]
from .samplers import DefaultSampler  # noqa: E402,F401
