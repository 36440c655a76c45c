from .cross_entropy import CrossEntropyLoss
from .frequency import FocalFrequencyLoss, FocalL1Loss, focal_l1
from .reconstruction import PixelReconstructionLoss

__all__ = ['CrossEntropyLoss', 'PixelReconstructionLoss', 'FocalFrequencyLoss', 'FocalL1Loss', 'focal_l1']
