# ViT-S/16 with the SimMIM protocol, 100 epochs: the file the A2MIM README links for the SimMIM ViT-S baseline (openmixup
# vit_small_p16_swin_ft_simmim_sz224_8xb128_cos_ep100.py; 81.7 top-1): the ViT-B recipe with 8 x 128 images per
# update, no accumulation and no EMA.
_base_ = './vit-base-p16_4xb128-accu2-amp-coslr-100e_in1k.py'

model = dict(backbone=dict(arch='s'))
optim_wrapper = dict(accumulative_counts=1)
custom_hooks = []
