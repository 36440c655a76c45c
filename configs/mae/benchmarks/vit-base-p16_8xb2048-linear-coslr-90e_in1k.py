# MAE ViT-B/16 linear probing (official recipe): frozen encoder, cls token, BatchNorm without affine + Linear,
# LARS lr 0.1 x 16384/256 = 6.4, momentum 0.9, wd 0, 8 x 2048 = 16384 images per step, 10 warmup epochs then
# cosine to 0, 90 epochs.
_base_ = ['../../_base_/datasets/imagenet_bs2048_linear.py', '../../_base_/default_runtime.py']

max_epochs = 90
warmup_epochs = 10
base_lr = 0.1  # per 256 images

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        frozen_stages=12,
        out_type='cls_token',
        final_norm=True,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.'),
    ),
    neck=dict(type='ClsBatchNormNeck', input_features=768),
    head=dict(type='VisionTransformerClsHead', num_classes=1000, in_channels=768, init_std=0.01),
)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=base_lr * 16384 / 256, weight_decay=0.0, momentum=0.9),
    constructor='LayerDecayOptimWrapperConstructor',
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=16384)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto'),
)
