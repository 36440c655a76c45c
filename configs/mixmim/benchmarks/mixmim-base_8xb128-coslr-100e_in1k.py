# MixMIM-B end-to-end fine-tuning (official exp/base_600ep/finetune.sh): 8 x 128 = 1024 images per step, AdamW
# lr 5e-4 x 1024/256 = 2e-3, betas (0.9, 0.999), wd 0.05 (none on 1-D parameters), layer decay 0.7 with the official
# depths (patch merging with the next stage's first block, head at 0.7^1), drop path 0.1, 5 warmup epochs then cosine
# to 1e-6, 100 epochs; RandAugment rand-m9-mstd0.5-inc1, RandomErasing 0.25 (pixel), Mixup 0.8 / CutMix 1.0 with
# label smoothing 0.1; head on the mean of the normalised last-stage tokens, initialised N(0, 2e-5).
# fp32 as the config name says; add --amp for the official mixed precision. Reported: 84.63 (300e pretraining, this
# recipe in mmpretrain), 85.1 (600e).
_base_ = ['../../_base_/datasets/imagenet_bs128_finetune.py', '../../_base_/default_runtime.py']

img_size = 224
max_epochs = 100
warmup_epochs = 5
base_lr = 5e-4  # per 256 images

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='MixMIMTransformer',
        arch='base',
        img_size=img_size,
        drop_rate=0.0,
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.'),
    ),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=1024, init_std=2e-5),
    train_cfg=dict(
        augments=dict(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, switch_prob=0.5),
        random_erasing=dict(probability=0.25, mode='pixel'),
    ),
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='TimmRandAugment', config_str='rand-m9-mstd0.5-inc1', interpolation='bicubic', img_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=128, dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr * 1024 / 256, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.7),
)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6 / 2e-3, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True
    ),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto'))
