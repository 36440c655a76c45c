# MAE ViT-B/16 end-to-end fine-tuning (official recipe): 8 x 128 = 1024 images per step, AdamW lr 5e-4 x 1024/256,
# betas (0.9, 0.999), wd 0.05, layer decay 0.65, drop path 0.1, 5 warmup epochs then cosine to 1e-6, 100 epochs,
# Mixup 0.8 / CutMix 1.0 with label smoothing 0.1, RandAugment, RandomErasing 0.25, global-pool + LayerNorm head.
_base_ = ['../../_base_/datasets/imagenet_bs128_finetune.py', '../../_base_/default_runtime.py']

max_epochs = 100
warmup_epochs = 5
base_lr = 5e-4  # per 256 images
drop_path_rate = 0.1
layer_decay_rate = 0.65

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        drop_path_rate=drop_path_rate,
        out_type='avg_featmap',  # mean of patch tokens + ln2, the MAE fc_norm
        final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.'),
    ),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=768, init_std=2e-5),
    train_cfg=dict(
        augments=dict(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, switch_prob=0.5),
        random_erasing=dict(probability=0.25, mode='pixel'),
    ),
)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr * 1024 / 256, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=layer_decay_rate),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto'))
