# A2MIM ConvNeXt-S l3, 300 epochs (openmixup convnext_s_l3_sz224_init_8xb256_cos_ep300): ConvNeXt-T's recipe.
_base_ = './a2mim_convnext-tiny-l3_8xb256-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='small'))
