# SimMIM Swin-B 100e (published recipe): 8 x 256 = 2048 images per step, AdamW lr 2e-4 x 2048/512, betas
# (0.9, 0.999), wd 0.05 (none on 1-D params, bias tables, mask token), grad clip 5, 10 warmup epochs from 1e-6 x
# 2048/512, cosine to 1e-5 x 2048/512.
_base_ = [
    '../_base_/models/simmim_swin-base-w6.py',
    '../_base_/datasets/imagenet_bs256_simmim_192.py',
    '../_base_/default_runtime.py',
]

max_epochs = 100
warmup_epochs = 10
base_lr = 2e-4  # per 512 images
scale = 2048 / 512

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=base_lr * scale, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
    constructor='LayerDecayOptimWrapperConstructor',
)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6 / base_lr,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True,
    ),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5 * scale,
        by_epoch=True,
        begin=warmup_epochs,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))
auto_scale_lr = dict(base_batch_size=2048)
resume = True
