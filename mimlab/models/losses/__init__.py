from .cross_entropy import BinaryCrossEntropy, CrossEntropyLoss
from .frequency import FocalFrequencyLoss, FocalL1Loss, focal_l1
from .reconstruction import PixelReconstructionLoss

__all__ = [
    'BinaryCrossEntropy',
    'CrossEntropyLoss',
    'PixelReconstructionLoss',
    'FocalFrequencyLoss',
    'FocalL1Loss',
    'focal_l1',
]
