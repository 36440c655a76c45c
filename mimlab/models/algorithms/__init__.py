from .base import BaseAlgorithm
from .mae import MAE, MAEPretrainDecoder, MAEPretrainHead, MAEViT, patchify, random_masking, unpatchify

__all__ = [
    'BaseAlgorithm', 'MAE', 'MAEViT', 'MAEPretrainDecoder', 'MAEPretrainHead', 'patchify', 'unpatchify',
    'random_masking',
]
