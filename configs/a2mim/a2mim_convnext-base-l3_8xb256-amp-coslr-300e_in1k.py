# A2MIM ConvNeXt-B l3, 300 epochs (openmixup convnext_b_l3_sz224_init_8xb256_cos_ep300): ConvNeXt-T's recipe; the
# mask site is 7 x 7 x 1024.
_base_ = './a2mim_convnext-tiny-l3_8xb256-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='base'))
