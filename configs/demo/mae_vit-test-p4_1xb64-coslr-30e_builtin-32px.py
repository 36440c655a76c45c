# A tiny MAE that trains on CPU in minutes on mimlab's built-in procedural dataset (no download).
# Same recipe shape as the ImageNet configs: masking 75%, norm-pix L2, AdamW (0.9, 0.95), warmup + cosine.
_base_ = ['../_base_/default_runtime.py']

img_size = 32
max_epochs = 30
warmup_epochs = 1
batch_size = 64

model = dict(
    type='MAE',
    backbone=dict(
        type='MAEViT',
        arch=dict(embed_dims=96, num_layers=4, num_heads=3, feedforward_channels=384),
        img_size=img_size,
        patch_size=4,
        mask_ratio=0.75,
    ),
    neck=dict(type='MAEPretrainDecoder', decoder_embed_dims=64, decoder_depth=2, decoder_num_heads=2, mlp_ratio=4.0),
    head=dict(type='MAEPretrainHead', norm_pix=True, loss=dict(type='PixelReconstructionLoss', criterion='L2')),
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
    # One worker: with the rendered images cached, a batch of this demo costs ~20 ms of one core, and on a 2-core
    # machine a second worker only competes with the training threads (iterations ~0.13-0.15 s vs ~0.17-0.20 s).
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='ExactResumeSampler', shuffle=True),
    collate_fn=dict(type='mimlab.default_collate'),
    dataset=dict(type='BuiltinDataset', split='train', num_samples=4096, img_size=48, seed=0, pipeline=train_pipeline),
)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.5e-4 * 512 / 256 * 4, betas=(0.9, 0.95), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=max_epochs)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=16),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3),
)

# a grid of 4 training images and their reconstructions every 10 epochs:
# work_dirs/<config>/<timestamp>/vis_data/vis_image/reconstruction_<epoch>.png
custom_hooks = [dict(type='ReconstructionHook', interval=10, num_images=4)]
