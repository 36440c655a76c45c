# Linear probe of the demo MAE encoder on the built-in dataset (CPU, about a minute):
#   GPUS=1 bash tools/benchmarks/classification/mim_dist_train.sh CONFIG PRETRAIN
# Same protocol as the ImageNet recipe (frozen encoder, BatchNorm without affine + Linear, LARS, warmup + cosine),
# scaled down. The encoder arch must match configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py.
_base_ = ['../_base_/default_runtime.py']

img_size = 32
max_epochs = 20
warmup_epochs = 2
batch_size = 128
embed_dims = 96

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch=dict(embed_dims=embed_dims, num_layers=4, num_heads=3, feedforward_channels=384),
        img_size=img_size,
        patch_size=4,
        frozen_stages=4,
        out_type='avg_featmap',
        final_norm=True,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.'),
    ),
    neck=dict(type='ClsBatchNormNeck', input_features=embed_dims),
    head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=embed_dims, init_std=0.01),
)

data_preprocessor = dict(
    type='MIMDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
)
train_pipeline = [
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.5, 1.0), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='ResizeEdge', scale=img_size, edge='short', interpolation='bicubic'),
    dict(type='PackInputs'),
]
builtin = dict(type='BuiltinDataset', img_size=48, num_classes=10, seed=0)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=1,  # the cached built-in images need less than one core (see the demo MAE config)
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='ExactResumeSampler', shuffle=True),
    collate_fn=dict(type='mimlab.default_collate'),
    dataset=dict(**builtin, split='train', num_samples=4096, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=1,  # the cached built-in images need less than one core (see the demo MAE config)
    persistent_workers=True,
    sampler=dict(type='ExactResumeSampler', shuffle=False),
    collate_fn=dict(type='mimlab.default_collate'),
    dataset=dict(**builtin, split='val', num_samples=1000, pipeline=test_pipeline),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    # LARS's trust ratio (0.001 x |w| / |g|) makes steps tiny: a few hundred steps of batch 128 need a large lr
    optimizer=dict(type='LARS', lr=50.0, weight_decay=0.0, momentum=0.9),
    constructor='LayerDecayOptimWrapperConstructor',
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='AtomicCheckpointHook', interval=max_epochs, max_keep_ckpts=1),
)
