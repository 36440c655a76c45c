from .base import BaseBackbone
from .swin import SwinTransformer
from .vit import VisionTransformer

__all__ = ['BaseBackbone', 'SwinTransformer', 'VisionTransformer']
