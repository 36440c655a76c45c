from .base import BaseBackbone
from .convnext import ConvNeXt
from .mixmim import MixMIMTransformer
from .resnet import ResNet
from .swin import SwinTransformer
from .vit import VisionTransformer

__all__ = ['BaseBackbone', 'ConvNeXt', 'MixMIMTransformer', 'ResNet', 'SwinTransformer', 'VisionTransformer']
