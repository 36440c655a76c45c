# Fine-tuning an A2MIM (or SimMIM) ConvNeXt-S, the A2MIM table's ConvNeXt protocol (openmixup
# convnext_s_spark_ft_sz224_8xb256_cos_fp16_ep300.py, which the A2MIM README labels "RSB A2" although it is an AdamW
# recipe; 83.7 top-1): 8 x 256 x 2 accumulation = 4096 images per update at 224 px, RandAugment m9 (std 0.5),
# RandomErasing 0.25, Mixup 0.8 / CutMix 1.0 with label smoothing 0.1, drop path 0.4, AdamW lr 4e-3, betas
# (0.9, 0.999), wd 0.05 with none on norms, biases and LayerScale, 5 warmup epochs from 1e-5 x lr multiplied into a
# per-iteration cosine to 1e-6 over the whole run (mmcv's CosineAnnealing), 300 epochs, fp16; EMA decay 0.9999
# warmed up over 20 x 626 updates, one per optimizer step; resize 256 -> centre crop 224 for validation.
#   GPUS=8 bash tools/benchmarks/classification/mim_dist_train.sh CONFIG PRETRAINED_CHECKPOINT
_base_ = ['../../_base_/datasets/imagenet_bs128_finetune.py', '../../_base_/default_runtime.py']

max_epochs = 300
warmup_epochs = 5
accumulation = 2

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ConvNeXt',
        arch='small',
        drop_path_rate=0.4,
        gap_before_final_norm=True,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.'),
    ),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=768, init_std=0.02),
    train_cfg=dict(
        augments=dict(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, switch_prob=0.5),
        random_erasing=dict(probability=0.25, mode='pixel'),
    ),
)
train_dataloader = dict(batch_size=256)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='float16',
    loss_scale='dynamic',
    accumulative_counts=accumulation,
    optimizer=dict(type='AdamW', lr=4e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=0, convert_to_iter_based=True),
]
train_cfg = dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=4096)
custom_hooks = [
    dict(type='ChannelsLastHook'),
    dict(
        type='EMAHook',
        ema_type='WarmupExponentialMovingAverage',
        momentum=1e-4,
        interval=accumulation,  # average after each optimizer step, as openmixup's update_interval
        warmup_iters=20 * 626,
        warmup_ratio=0.9,
    ),
]
default_hooks = dict(
    logger=dict(interval=100),
    checkpoint=dict(interval=10, max_keep_ckpts=1, save_best='auto'),
)
