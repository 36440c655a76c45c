# A tiny A2MIM that trains on CPU in minutes on mimlab's built-in procedural dataset (no download): ResNet 'test'
# (one bottleneck per stage) at 64 px, 16-px blocks masked 60% (10 of 16) over the 16-px grid of the layer3 output
# (4 x 4), mean-RGB fill, mask token + gamma at l3, focal L1 + 0.5 x focal frequency loss. Same recipe shape as
# configs/a2mim/a2mim_resnet50-l3_8xb256-coslr-300e_in1k.py.
_base_ = ['../_base_/default_runtime.py']

img_size = 64
max_epochs = 10
warmup_epochs = 1
batch_size = 64

model = dict(
    type='A2MIM',
    backbone=dict(type='MIMResNet', depth='test', mask_layer=3, replace=False, mask_init=1e-6, out_indices=(3,)),
    neck=dict(type='SimMIMLinearDecoder'),
    head=dict(
        type='A2MIMHead',
        loss=dict(type='FocalL1Loss', alpha=0.2, gamma=1.0, activate='sigmoid'),
        fft_weight=0.5,
        fft_focal=True,
        fft_unmask_replace='mixed',
        fft_unmask_weight=1e-3,
    ),
)

data_preprocessor = dict(
    type='MIMDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
)
train_pipeline = [
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.8, 1.0), interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='SimMIMMaskGenerator', input_size=img_size, mask_patch_size=16, model_patch_size=16, mask_ratio=0.6),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='mimlab.default_collate'),
    dataset=dict(type='BuiltinDataset', split='train', num_samples=2048, img_size=64, seed=0, pipeline=train_pipeline),
)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0, custom_keys={'mask_token': dict(lr_mult=0.1, decay_mult=0.0)}
    ),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=8),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
)
