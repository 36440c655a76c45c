from .cross_entropy import CrossEntropyLoss
from .reconstruction import PixelReconstructionLoss

__all__ = ['CrossEntropyLoss', 'PixelReconstructionLoss']
