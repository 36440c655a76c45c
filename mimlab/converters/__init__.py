from .a2mim import a2mim_from_openmixup, a2mim_to_openmixup, classifier_from_openmixup
from .convnext import convnext_from_timm, convnext_to_timm, timm_convnext_model
from .mixmim import mixmim_from_official, mixmim_to_official
from .resnet import resnet_from_timm, resnet_to_timm, timm_resnet_model
from .vit import split_checkpoint, vit_from_timm, vit_to_timm

__all__ = [
    'a2mim_from_openmixup',
    'a2mim_to_openmixup',
    'classifier_from_openmixup',
    'convnext_from_timm',
    'convnext_to_timm',
    'mixmim_from_official',
    'mixmim_to_official',
    'resnet_from_timm',
    'resnet_to_timm',
    'split_checkpoint',
    'timm_convnext_model',
    'timm_resnet_model',
    'vit_from_timm',
    'vit_to_timm',
]
