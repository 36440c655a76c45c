from .builtin import BuiltinDataset, write_builtin_dataset
from .collate import default_collate
from .hf import HFDataset, HFIterableDataset
from .imagenet import CustomDataset, ImageNet
from .repeat_aug_sampler import RepeatAugSampler
from .samplers import ExactResumeSampler
from .shards import WebDataset
from .streaming import StreamedDataset
from .transforms import (
    LoadImageRandomResizedCrop,
    MAERandomResizedCrop,
    PackEncodedWithCrop,
    PackInputs,
    RandomResizedCrop,
    ResizeEdge,
    SimpleResizedCrop,
    TimmRandAugment,
)

__all__ = [
    'BuiltinDataset',
    'write_builtin_dataset',
    'CustomDataset',
    'ImageNet',
    'default_collate',
    'HFDataset',
    'HFIterableDataset',
    'ExactResumeSampler',
    'RepeatAugSampler',
    'StreamedDataset',
    'WebDataset',
    'LoadImageRandomResizedCrop',
    'MAERandomResizedCrop',
    'PackEncodedWithCrop',
    'PackInputs',
    'RandomResizedCrop',
    'ResizeEdge',
    'SimpleResizedCrop',
    'TimmRandAugment',
]
