# A tiny MixMIM that trains on CPU on mimlab's built-in procedural dataset (no download). 64-px images give a 2x2
# output grid: each image keeps 2 of its 4 32-px cells and lends the other 2 to its partner. Same recipe shape as
# the ImageNet configs: norm-pix L2 on all tokens after unmixing, AdamW (0.9, 0.95), warmup + cosine.
_base_ = ['../_base_/default_runtime.py']

img_size = 64
max_epochs = 10
warmup_epochs = 1
batch_size = 64

model = dict(
    type='MixMIM',
    backbone=dict(
        type='MixMIMPretrainTransformer',
        arch=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
        img_size=img_size,
        window_size=[8, 8, 4, 2],
        mask_ratio=0.5,
    ),
    neck=dict(type='MixMIMPretrainDecoder', decoder_embed_dims=64, decoder_depth=2, decoder_num_heads=2),
    head=dict(type='MixMIMPretrainHead', norm_pix=True, loss=dict(type='PixelReconstructionLoss', criterion='L2')),
)

data_preprocessor = dict(
    type='MIMDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
)
train_pipeline = [
    dict(type='MAERandomResizedCrop', scale=img_size, crop_ratio_range=(0.2, 1.0), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=2,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='ExactResumeSampler', shuffle=True),
    collate_fn=dict(type='mimlab.default_collate'),
    dataset=dict(type='BuiltinDataset', split='train', num_samples=2048, img_size=64, seed=0, pipeline=train_pipeline),
)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.5e-4 * batch_size / 256 * 8, betas=(0.9, 0.95), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=max_epochs)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=8),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2),
)
