# A2MIM ViT-B/16, mask token at l0 (openmixup vit_base_l0_sz224_8xb128_accu2_step_ep800): 224 px, 32-px blocks masked
# 60% over the 16-px patch grid, mean-RGB fill, learnable mask token added to the patch embeddings (no gamma);
# LayerScale 0.1, drop path 0.1; decoder 1x1 conv + PixelShuffle(16); L1 on masked pixels + 0.1 x focal frequency
# loss (visible pixels replaced by 'mixed'). 8 x 128 x 2 accumulation = 2048 images per update, AdamW lr
# 1e-4 x 2048/512, 10 warmup epochs, step x0.1 at epoch 700, gradient clipping at 5, fp32.
_base_ = ['../_base_/default_runtime.py']

img_size = 224
max_epochs = 800
warmup_epochs = 10
base_lr = 1e-4  # per 512 images
lr_scale = 2048 / 512

model = dict(
    type='A2MIM',
    backbone=dict(
        type='A2MIMViT',
        arch='b',
        img_size=img_size,
        patch_size=16,
        mask_layer=0,
        replace=False,
        layer_scale_init_value=0.1,
        drop_path_rate=0.1,
    ),
    neck=dict(type='SimMIMLinearDecoder'),
    head=dict(
        type='A2MIMHead',
        loss=dict(type='FocalL1Loss', gamma=0.0),  # gamma 0: the plain L1 (openmixup's 'l1_loss')
        fft_weight=0.1,
        fft_focal=True,
        fft_unmask_replace='mixed',
        fft_unmask_weight=0.0,
    ),
)

data_preprocessor = dict(
    type='MIMDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.67, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        interpolation='bilinear',
    ),
    dict(type='RandomFlip', prob=0.5),
    dict(type='SimMIMMaskGenerator', input_size=img_size, mask_patch_size=32, model_patch_size=16, mask_ratio=0.6),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='mimlab.default_collate'),
    dataset=dict(type='ImageNet', data_root='data/imagenet/', split='train', pipeline=train_pipeline),
)

optim_wrapper = dict(
    type='OptimWrapper',
    accumulative_counts=2,
    optimizer=dict(type='AdamW', lr=base_lr * lr_scale, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            'pos_embed': dict(decay_mult=0.0),
            'cls_token': dict(decay_mult=0.0),
            'mask_token': dict(decay_mult=0.0),
            'gamma': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),  # openmixup's 'bias' regex matches it
        },
    ),
)
# linear warmup from 2e-6 x lr (openmixup's warmup_ratio), then a single x0.1 step at epoch 700
param_scheduler = [
    dict(type='LinearLR', start_factor=2e-6, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='MultiStepLR', milestones=[700], gamma=0.1, by_epoch=True, begin=0, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=2048)

default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))
resume = True
