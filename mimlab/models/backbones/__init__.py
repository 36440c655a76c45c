from .base import BaseBackbone
from .vit import VisionTransformer

__all__ = ['BaseBackbone', 'VisionTransformer']
