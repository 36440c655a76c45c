# A2MIM ConvNeXt-T, mask token at l3 (openmixup convnext_t_l3_sz224_init_8xb256_cos_ep300): the token goes in after
# the stride-32 downsample of the last stage, so the mask is 7 x 7 (model_patch_size 32); no Fourier loss and no
# blending of visible pixels; mixed precision; LayerScale gamma without decay (1-D), mask_gamma as the mask token.
# Optimiser, batch and schedule as ResNet-50 (lr 1.2e-3, 2048 images, 10 + 290 epochs).
_base_ = [
    '../_base_/datasets/imagenet_bs256_a2mim_rrc08.py',
    '../_base_/schedules/adamw_coslr_a2mim.py',
    '../_base_/default_runtime.py',
]

img_size = 224
model = dict(
    type='A2MIM',
    backbone=dict(type='MIMConvNeXt', arch='tiny', mask_layer=3, replace=False, mask_init=1e-6, drop_path_rate=0.0),
    neck=dict(type='SimMIMLinearDecoder'),
    head=dict(
        type='A2MIMHead',
        loss=dict(type='FocalL1Loss', alpha=0.2, gamma=1.0, activate='sigmoid'),
        unmask_weight=0.0,
        fft_weight=0.0,
        fft_focal=False,
        fft_unmask_replace='mixed',
        fft_unmask_weight=0.0,
    ),
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.8, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        interpolation='bilinear',
    ),
    dict(type='RandomFlip', prob=0.5),
    dict(type='SimMIMMaskGenerator', input_size=img_size, mask_patch_size=32, model_patch_size=32, mask_ratio=0.6),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# openmixup trained in fp16 with a dynamic loss scale; mimlab picks bf16 where the GPU has it (set
# optim_wrapper.dtype='float16' to match openmixup exactly)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    paramwise_cfg=dict(lr_mult={'mask_gamma': 0.1}, no_weight_decay=['mask_gamma']),
)

max_epochs = 300
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=2048)
default_hooks = dict(checkpoint=dict(interval=10))
resume = True
# CNN: weights and batches in channels_last memory format on GPUs (cuDNN's NHWC kernels; mimlab/engine/hooks)
custom_hooks = [dict(type='ChannelsLastHook')]
