# A2MIM's ViT pretraining schedule (openmixup's ViT l0 recipes): AdamW lr 1e-4 per 512 images scaled to the total
# batch of 2048 (4e-4), betas (0.9, 0.999), eps 1e-8, wd 0.05, gradient clipping at 5. openmixup exempts norms,
# biases, pos_embed, cls_token, mask_token, LayerScale gamma and (its 'bias' regex matches them) the relative-position
# bias tables from weight decay: here the 1-D parameters and the backbone's no_weight_decay(), the same set; every
# parameter at the full lr. Linear warmup over 10 epochs from 2e-6 x lr (openmixup's warmup_ratio), then a single
# x0.1 step at epoch 700, both updated every iteration. A recipe sets the length (`max_epochs = N`,
# `train_cfg = dict(max_epochs=max_epochs)`) and the accumulation that makes its batch 2048.
warmup_epochs = 10
base_lr = 1e-4  # per 512 images
lr_scale = 2048 / 512  # total batch / 512
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr * lr_scale, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
    constructor='LayerDecayOptimWrapperConstructor',
)
param_scheduler = [
    dict(type='LinearLR', start_factor=2e-6, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='MultiStepLR', milestones=[700], gamma=0.1, by_epoch=True, begin=0, convert_to_iter_based=True),
]
train_cfg = dict(type='ExactResumeEpochBasedTrainLoop')
