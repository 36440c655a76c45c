from .vit import split_checkpoint, vit_from_timm, vit_to_timm

__all__ = ['split_checkpoint', 'vit_from_timm', 'vit_to_timm']
