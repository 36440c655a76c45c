from .cls_heads import ClsBatchNormNeck, LinearClsHead, VisionTransformerClsHead

__all__ = ['ClsBatchNormNeck', 'LinearClsHead', 'VisionTransformerClsHead']
