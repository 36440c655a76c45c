# A2MIM's CNN pretraining schedule (openmixup's ResNet and ConvNeXt l3 recipes): AdamW lr 3e-4 per 512 images scaled
# to the total batch of 2048 (1.2e-3), betas (0.9, 0.999), eps 1e-8, wd 0.05. openmixup's paramwise rules: no decay on
# norms and biases (here: on every 1-D parameter, which in these models are exactly the norms' and biases') and on
# the mask token (the backbone's no_weight_decay()), and the mask token at 0.1 x lr (lr_mult). The 300e ResNet
# recipes do not list mask_gamma: it is decayed and gets the full lr (the ConvNeXt and ResNet-50 100e recipes add it).
# Linear warmup from ~0 over 10 epochs (openmixup: lr = base * t / T_w), then cosine to 1e-5 over the remaining
# iterations, both updated every iteration. A recipe sets the length, `max_epochs = N` and
# `train_cfg = dict(max_epochs=max_epochs)` (and `auto_scale_lr`: this schedule also serves the 64-image demo).
warmup_epochs = 10
base_lr = 3e-4  # per 512 images
lr_scale = 2048 / 512  # total batch / 512
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr * lr_scale, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(lr_mult={'mask_token': 0.1}),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='ExactResumeEpochBasedTrainLoop')
