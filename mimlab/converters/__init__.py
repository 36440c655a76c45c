from .convnext import convnext_from_timm, convnext_to_timm, timm_convnext_model
from .resnet import resnet_from_timm, resnet_to_timm, timm_resnet_model
from .vit import split_checkpoint, vit_from_timm, vit_to_timm

__all__ = [
    'convnext_from_timm',
    'convnext_to_timm',
    'resnet_from_timm',
    'resnet_to_timm',
    'split_checkpoint',
    'timm_convnext_model',
    'timm_resnet_model',
    'vit_from_timm',
    'vit_to_timm',
]
