# SimMIM ResNet-50, the A2MIM table's baseline (openmixup selfsup/simmim/imagenet/r50_sz224_8xb256_fp16_ep300.py;
# 79.9 top-1 after RSB A2): 224 px, 32-px blocks masked 60% over the 4-px grid of the stem output, where a learnable
# mask token replaces the masked features (openmixup's MIMResNet(mask_layer=0, replace=True); the A2MIM recipes add
# their token at l3 instead), no pixel fill, decoder 1x1 conv + PixelShuffle(32), plain L1 on the masked pixels.
# 8 x 256 = 2048 images per step, AdamW lr 2e-4 x 2048/512, wd 0.05 (none on norms, biases, mask token; the token at
# the full lr), 10 warmup epochs, cosine to 1e-5, 300 epochs, fp16 (schedules/adamw_coslr_a2mim.py otherwise).
# ResNet-101/152/200 change the depth.
_base_ = [
    '../_base_/datasets/imagenet_bs256_simmim_224_p4.py',
    '../_base_/schedules/adamw_coslr_a2mim.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='SimMIM',
    backbone=dict(
        type='MIMResNet',
        depth=50,
        mask_layer=0,
        replace=True,
        out_indices=(3,),
        norm_cfg=dict(type='SyncBN'),
    ),
    neck=dict(type='SimMIMLinearDecoder'),
    head=dict(type='SimMIMHead'),
)

max_epochs = 300
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='float16',
    loss_scale='dynamic',
    optimizer=dict(lr=2e-4 * 2048 / 512),
    # openmixup's SimMIM: mask token at the full lr; its norm regex misses (so decays) the downsample BN weights
    paramwise_cfg=dict(_delete_=True, weight_decay=['downsample.1.weight']),
)
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=2048)
default_hooks = dict(checkpoint=dict(interval=10))
resume = True
custom_hooks = [dict(type='ChannelsLastHook')]
