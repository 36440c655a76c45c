# SimMIM ConvNeXt-B (openmixup convnext_base_sz224_8xb256_fp16_ep300.py; 83.6 top-1): the ConvNeXt-S recipe, base.
_base_ = './simmim_convnext-small-l0_8xb256-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='base'))
