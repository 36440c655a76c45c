# End-to-end fine-tuning of the demo MAE encoder on the built-in dataset (CPU), the MAE fine-tuning protocol scaled
# down: layer decay, drop path, RandAugment, RandomErasing, Mixup/CutMix with label smoothing, global-pool + LN head.
#   GPUS=1 bash tools/benchmarks/classification/mim_dist_train.sh CONFIG PRETRAIN
_base_ = ['./vit-test-p4_linear-1xb128-coslr-20e_builtin-32px.py']

max_epochs = 10
warmup_epochs = 1
embed_dims = 96

model = dict(
    backbone=dict(frozen_stages=-1, drop_path_rate=0.1, out_type='avg_featmap', final_norm=False),
    neck=None,
    head=dict(type='LinearClsHead', in_channels=embed_dims, init_std=2e-5),
    train_cfg=dict(
        augments=dict(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, switch_prob=0.5),
        random_erasing=dict(probability=0.25, mode='pixel'),
    ),
)
train_pipeline = [
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.3, 1.0), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='TimmRandAugment', config_str='rand-m9-mstd0.5-inc1', interpolation='bicubic', img_size=32),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.75),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
# an EMA of the weights (evaluated in place of the raw weights); drop to fine-tune without it
custom_hooks = [dict(type='EMAHook', momentum=1e-3)]
