from .reconstruction import PixelReconstructionLoss

__all__ = ['PixelReconstructionLoss']
