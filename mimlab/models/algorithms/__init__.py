from .a2mim import A2MIM, A2MIMHead, A2MIMViT, MIMConvNeXt, MIMResNet, fill_mean_rgb
from .base import BaseAlgorithm
from .classifier import ImageClassifier
from .mae import MAE, MAEPretrainDecoder, MAEPretrainHead, MAEViT, patchify, random_masking, unpatchify
from .mixmim import MixMIM, MixMIMPretrainDecoder, MixMIMPretrainHead, MixMIMPretrainTransformer
from .pixmim import LowFreqTargetGenerator, PixMIM, low_pass_filter
from .simmim import SimMIM, SimMIMHead, SimMIMLinearDecoder, SimMIMMaskGenerator, SimMIMSwinTransformer, SimMIMViT

__all__ = [
    'BaseAlgorithm',
    'ImageClassifier',
    'MAE',
    'MAEViT',
    'MAEPretrainDecoder',
    'MAEPretrainHead',
    'patchify',
    'unpatchify',
    'random_masking',
    'PixMIM',
    'LowFreqTargetGenerator',
    'low_pass_filter',
    'SimMIM',
    'SimMIMHead',
    'SimMIMLinearDecoder',
    'SimMIMMaskGenerator',
    'SimMIMSwinTransformer',
    'SimMIMViT',
    'MixMIM',
    'MixMIMPretrainDecoder',
    'MixMIMPretrainHead',
    'MixMIMPretrainTransformer',
    'A2MIM',
    'A2MIMHead',
    'A2MIMViT',
    'MIMConvNeXt',
    'MIMResNet',
    'fill_mean_rgb',
]
