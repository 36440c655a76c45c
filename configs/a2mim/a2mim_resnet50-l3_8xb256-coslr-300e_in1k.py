# A2MIM ResNet-50, mask token at l3 (openmixup r50_l3_sz224_init_8xb256_cos_ep300): 224 px, 32-px blocks masked 60%
# (30 of 49) over the 16-px grid of the layer3 output, mean-RGB fill, learnable mask token added to the 1024-channel
# layer3 map with a learnable gamma (init 1e-6); decoder 1x1 conv + PixelShuffle(32) (width and stride inferred);
# focal L1 on masked pixels + 0.5 x focal frequency loss ('mixed' visible pixels at weight 1e-3).
# 8 x 256 = 2048 images per step, AdamW lr 3e-4 x 2048/512, 10 warmup epochs, cosine to 1e-5, fp32
# (schedules/adamw_coslr_a2mim.py).
_base_ = [
    '../_base_/datasets/imagenet_bs256_a2mim_rrc08.py',
    '../_base_/schedules/adamw_coslr_a2mim.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='A2MIM',
    backbone=dict(
        type='MIMResNet',
        depth=50,
        mask_layer=3,
        replace=False,
        mask_init=1e-6,
        out_indices=(3,),
        norm_cfg=dict(type='SyncBN'),
    ),
    neck=dict(type='SimMIMLinearDecoder'),
    head=dict(
        type='A2MIMHead',
        loss=dict(type='FocalL1Loss', alpha=0.2, gamma=1.0, activate='sigmoid'),
        unmask_weight=0.0,
        fft_weight=0.5,
        fft_focal=True,
        fft_unmask_replace='mixed',
        fft_unmask_weight=1e-3,
    ),
)

# openmixup's no-decay regex (bn|ln|gn)(\d+)?.(weight|bias) misses the downsample BN weights: they are decayed
# (docs/a2mim.md; drop this line for mimlab's earlier choice, every 1-D parameter exempt)
optim_wrapper = dict(paramwise_cfg=dict(weight_decay=['downsample.1.weight']))
max_epochs = 300
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=2048)
default_hooks = dict(checkpoint=dict(interval=10))
resume = True
# CNN: weights and batches in channels_last memory format on GPUs (cuDNN's NHWC kernels; mimlab/engine/hooks)
custom_hooks = [dict(type='ChannelsLastHook')]
