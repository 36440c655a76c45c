# ViT-S/16 (openmixup's 'small': 768 wide, 8 blocks) with the SimMIM protocol, 200 epochs, as the A2MIM ViT-S row
# (openmixup vit_small_p16_swin_ft_simmim_sz224_8xb128_cos_ep200.py; 82.1 top-1): the ViT-B recipe with 8 x 128 images
# per update and no accumulation, no EMA (openmixup's ViT-S files have none), 200 epochs.
_base_ = './vit-base-p16_4xb128-accu2-amp-coslr-100e_in1k.py'

max_epochs = 200
model = dict(backbone=dict(arch='s'))
optim_wrapper = dict(accumulative_counts=1)
train_cfg = dict(max_epochs=max_epochs)
custom_hooks = []
