# ViT-L/16 with the SimMIM protocol, 150 epochs, as the A2MIM ViT-L row (openmixup
# vit_large_p16_swin_ft_simmim_sz224_8xb64_accu2_cos_ep150.py; 86.1 top-1): the ViT-B recipe with 8 x 64 x 2 = 1024
# images per update, repeated augmentation (3 copies; "the official repo uses repeated_aug"), no EMA, 150 epochs.
_base_ = './vit-base-p16_4xb128-accu2-amp-coslr-100e_in1k.py'

max_epochs = 150
embed_dims = 1024
model = dict(backbone=dict(arch='l'), head=dict(in_channels=embed_dims))
train_dataloader = dict(batch_size=64, sampler=dict(type='RepeatAugSampler', shuffle=True, num_repeats=3))
train_cfg = dict(max_epochs=max_epochs)
custom_hooks = []
