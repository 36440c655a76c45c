# MAE pretraining schedule: AdamW (0.9, 0.95), wd 0.05 (none on 1-D params, position tables, cls/mask tokens),
# linear warmup then cosine to 0, both updated every iteration. A recipe sets the length, `max_epochs = N` and
# `train_cfg = dict(max_epochs=max_epochs)`; the cosine phase ends there (mmengine's default `end`), so 300e and 800e
# recipes differ in one line.
warmup_epochs = 40
base_lr = 1.5e-4  # per 256 images
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=base_lr * 4096 / 256, betas=(0.9, 0.95), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True,
    ),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='ExactResumeEpochBasedTrainLoop')
# `tools/train.py --auto-scale-lr` rescales the lr when the total batch differs from 8 x 512
auto_scale_lr = dict(base_batch_size=4096)
