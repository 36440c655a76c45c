# A tiny A2MIM that trains on CPU in minutes on mimlab's built-in procedural dataset (no download): ResNet 'test'
# (one bottleneck per stage) at 64 px, 16-px blocks masked 60% (10 of 16) over the 16-px grid of the layer3 output
# (4 x 4), mean-RGB fill, mask token + gamma at l3, focal L1 + 0.5 x focal frequency loss. Same recipe shape as
# configs/a2mim/a2mim_resnet50-l3_8xb256-coslr-300e_in1k.py.
_base_ = [
    '../_base_/datasets/builtin_bs64_a2mim_64px.py',
    '../_base_/schedules/adamw_coslr_a2mim.py',
    '../_base_/default_runtime.py',
]

max_epochs = 10
warmup_epochs = 1

model = dict(
    type='A2MIM',
    backbone=dict(type='MIMResNet', depth='test', mask_layer=3, replace=False, mask_init=1e-6, out_indices=(3,)),
    neck=dict(type='SimMIMLinearDecoder'),
    head=dict(
        type='A2MIMHead',
        loss=dict(type='FocalL1Loss', alpha=0.2, gamma=1.0, activate='sigmoid'),
        fft_weight=0.5,
        fft_focal=True,
        fft_unmask_replace='mixed',
        fft_unmask_weight=1e-3,
    ),
)

# the ResNet-50 optimiser (lr 1.2e-3) at batch 64; one warmup epoch from 1e-3 x lr
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True),
]
optim_wrapper = dict(paramwise_cfg=dict(weight_decay=['downsample.1.weight']))  # as openmixup's ResNet recipes
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(logger=dict(interval=8))
