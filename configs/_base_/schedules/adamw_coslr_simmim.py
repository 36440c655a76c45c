# SimMIM pretraining schedule (the Swin-B 100e recipe): AdamW lr 2e-4 per 512 images scaled to the total batch of
# 2048, betas (0.9, 0.999), wd 0.05 (none on 1-D params, relative-position bias tables, absolute position table and
# mask token: LayerDecayOptimWrapperConstructor + the backbone's no_weight_decay()), gradient clipping at 5.
# Linear warmup from 1e-6 per 512 images, then cosine to 1e-5 per 512 images, both updated every iteration.
# A recipe sets the length, `max_epochs = N` and `train_cfg = dict(max_epochs=max_epochs)`; the cosine phase ends
# there (mmengine's default `end`), so recipes of other lengths differ in one line.
warmup_epochs = 10
base_lr = 2e-4  # per 512 images
lr_scale = 2048 / 512  # total batch / 512
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=base_lr * lr_scale, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
    constructor='LayerDecayOptimWrapperConstructor',
)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6 / base_lr,  # starts at 1e-6 x lr_scale = 4e-6
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True,
    ),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5 * lr_scale,
        by_epoch=True,
        begin=warmup_epochs,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(type='ExactResumeEpochBasedTrainLoop')
# `tools/train.py --auto-scale-lr` rescales the lr when the total batch differs from 2048
auto_scale_lr = dict(base_batch_size=2048)
