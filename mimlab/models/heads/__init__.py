from .cls_heads import ClsBatchNormNeck, GlobalAveragePooling, LinearClsHead, VisionTransformerClsHead

__all__ = ['ClsBatchNormNeck', 'GlobalAveragePooling', 'LinearClsHead', 'VisionTransformerClsHead']
