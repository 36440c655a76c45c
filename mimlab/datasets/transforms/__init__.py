from .cls_transforms import ResizeEdge, TimmRandAugment
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
]
from .fast_loading import LoadImageRandomResizedCrop  # noqa: E402

__all__ += ['LoadImageRandomResizedCrop']
from .encoded import PackEncodedWithCrop  # noqa: E402

__all__ += ['PackEncodedWithCrop']
