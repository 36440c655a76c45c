# A2MIM ConvNeXt-T, mask token at l3 (openmixup convnext_t_l3_sz224_init_8xb256_cos_ep300): the token goes in after
# the stride-32 downsample of the last stage, so the mask is 7 x 7 (model_patch_size 32); no Fourier loss and no
# blending of visible pixels; mixed precision; LayerScale gamma without decay, mask_gamma as the mask token.
# Optimiser, batch and schedule as ResNet-50 (lr 1.2e-3, 2048 images, 10 + 290 epochs).
_base_ = './a2mim_resnet50-l3_8xb256-coslr-300e_in1k.py'

img_size = 224
model = dict(
    backbone=dict(
        _delete_=True,
        type='MIMConvNeXt',
        arch='tiny',
        mask_layer=3,
        replace=False,
        mask_init=1e-6,
        drop_path_rate=0.0,
    ),
    head=dict(fft_weight=0.0, fft_focal=False, fft_unmask_weight=0.0),
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
    paramwise_cfg=dict(
        custom_keys={
            'mask_token': dict(lr_mult=0.1, decay_mult=0.0),
            'mask_gamma': dict(lr_mult=0.1, decay_mult=0.0),
            'gamma': dict(decay_mult=0.0),
        }
    ),
)
