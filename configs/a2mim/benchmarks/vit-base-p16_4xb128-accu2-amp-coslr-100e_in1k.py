# Fine-tuning an A2MIM (or SimMIM) ViT-B/16 with the SimMIM protocol of the A2MIM table (openmixup
# vit_base_p16_swin_ft_simmim_sz224_4xb128_accu2_cos_ep100.py; A2MIM 84.3, SimMIM 83.8 top-1): 4 x 128 x 2
# accumulation = 1024 images per update, BEiT-style relative position bias in every block, LayerScale 0.1, drop path
# 0.1, global average of the patch tokens + LayerNorm, RandAugment m9 (std 0.5), RandomErasing 0.25, Mixup 0.8 /
# CutMix 1.0 with label smoothing 0.1, AdamW lr 2.5e-3 x 1024/256 = 1e-2, betas (0.9, 0.999), wd 0.05 (none on norms,
# biases, cls token, position tables, LayerScale), layer decay 0.65, gradient clipping at 5, 20 warmup epochs, cosine
# to 1e-6 per iteration, 100 epochs, fp16; EMA decay 0.99996 warmed up over 20 x 2503 updates, one per optimizer step.
# Resize 256 -> centre crop 224 for validation. ViT-S and ViT-L are this recipe with a few lines changed.
#   GPUS=4 bash tools/benchmarks/classification/mim_dist_train.sh CONFIG PRETRAINED_CHECKPOINT
_base_ = ['../../_base_/datasets/imagenet_bs128_finetune.py', '../../_base_/default_runtime.py']

max_epochs = 100
warmup_epochs = 20
accumulation = 2
embed_dims = 768

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        use_rel_pos_bias=True,
        layer_scale_init_value=0.1,
        out_type='avg_featmap',  # mean of the patch tokens + ln2 (openmixup's fc_norm)
        final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.'),
    ),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=embed_dims, init_std=0.01),
    train_cfg=dict(
        augments=dict(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, switch_prob=0.5),
        random_erasing=dict(probability=0.25, mode='pixel'),
    ),
)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='float16',
    loss_scale='dynamic',
    accumulative_counts=accumulation,
    clip_grad=dict(max_norm=5.0),
    optimizer=dict(type='AdamW', lr=2.5e-3 * 1024 / 256, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65),
)
# openmixup's StepFixCosineAnnealing: a linear warmup from 0, then the cosine over the remaining iterations
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='WarmupExponentialMovingAverage',
        momentum=4e-5,  # openmixup's decay 0.99996
        interval=accumulation,
        warmup_iters=20 * 2503,
        warmup_ratio=0.9,
    ),
]
default_hooks = dict(
    logger=dict(interval=100),
    checkpoint=dict(interval=10, max_keep_ckpts=1, save_best='auto'),
)
