# MixMIM-B pretraining, 300 epochs (mmpretrain/mmselfsup's reproduction, 84.63 after fine-tuning): 16 x 128 = 2048
# images per step, AdamW lr 1.5e-4 x 2048/256 = 1.2e-3, betas (0.9, 0.95), wd 0.05 (the official rule: none on
# 1-D parameters; mask token and relative-position tables decayed), 40 warmup epochs then cosine to 0, both per
# iteration, fp32 as mmpretrain's recipe (the official code trains with fp16 AMP: see the 600e recipe).
# RandomResizedCrop 224 (0.2, 1.0) bicubic + flip. Pairs are formed within each GPU's batch of 128; the last
# incomplete batch is dropped so that every image has a partner.
_base_ = [
    '../_base_/models/mixmim_mixmim-base.py',
    '../_base_/datasets/imagenet_bs512_mae.py',
    '../_base_/default_runtime.py',
]

max_epochs = 300
warmup_epochs = 40
base_lr = 1.5e-4  # per 256 images

train_dataloader = dict(batch_size=128, drop_last=True)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr * 2048 / 256, betas=(0.9, 0.95), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=2048)
resume = True
