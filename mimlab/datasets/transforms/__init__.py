from .cls_transforms import ResizeEdge, TimmRandAugment
from .encoded import PackEncodedWithCrop
from .fast_loading import LoadImageRandomResizedCrop
from .formatting import PackInputs
from .processing import MAERandomResizedCrop, RandomResizedCrop
from .simple_crop import SimpleResizedCrop

__all__ = [
    'PackInputs',
    'RandomResizedCrop',
    'MAERandomResizedCrop',
    'SimpleResizedCrop',
    'ResizeEdge',
    'TimmRandAugment',
    'LoadImageRandomResizedCrop',
    'PackEncodedWithCrop',
]
