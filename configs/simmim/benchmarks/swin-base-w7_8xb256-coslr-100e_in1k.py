# Fine-tuning a SimMIM Swin-B (pretrained at 192 px, window 6) at 224 px with window 7 (published protocol): the
# relative-position bias tables are resized when the checkpoint loads (see docs/simmim.md). 8 x 256 = 2048 images per
# step, AdamW lr 1.25e-3 x 2048/512 = 5e-3, wd 0.05, layer decay 0.9, drop path 0.1, grad clip 5, 20 warmup epochs from
# 2.5e-7 x 4, cosine to 2.5e-7 x 4, 100 epochs; RandAugment, RandomErasing 0.25, Mixup 0.8 / CutMix 1.0, smoothing 0.1.
# The 192-px (window 6) and Swin-L recipes are this one with a few lines changed.
_base_ = ['../../_base_/datasets/imagenet_bs128_finetune.py', '../../_base_/default_runtime.py']

img_size = 224
max_epochs = 100
warmup_epochs = 20
scale = 2048 / 512

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='SwinTransformer',
        arch='base',
        img_size=img_size,
        window_size=7,
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.'),
    ),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=1024, init_std=0.02),
    train_cfg=dict(
        augments=dict(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, switch_prob=0.5),
        random_erasing=dict(probability=0.25, mode='pixel'),
    ),
)

train_dataloader = dict(batch_size=256)
val_dataloader = dict(batch_size=64)
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1.25e-3 * scale, weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9),
)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=2.5e-7 / 1.25e-3,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True,
    ),
    dict(
        type='CosineAnnealingLR',
        eta_min=2.5e-7 * scale,
        by_epoch=True,
        begin=warmup_epochs,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=2048)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto'),
)
