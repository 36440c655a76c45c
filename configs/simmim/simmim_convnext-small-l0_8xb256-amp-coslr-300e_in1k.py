# SimMIM ConvNeXt-S, the A2MIM table's baseline (openmixup selfsup/simmim/imagenet/convnext_small_sz224_8xb256_fp16_
# ep300.py; 83.2 top-1): the SimMIM ResNet-50 recipe's data and schedule (AdamW lr 8e-4, 10 warmup epochs, cosine to
# 1e-5, 300 epochs, fp16) on ConvNeXt-S, the mask token at the stem output (stride 4).
# openmixup's file sets replace=False: the token is *added* to the masked stem features (no pixel fill, no gamma), and
# this recipe follows it, since it is the configuration behind the published number; replace=True would give
# SimMIM's replacement (docs/a2mim.md). Without a replacement the masked pixels stay visible to the encoder.
_base_ = [
    '../_base_/datasets/imagenet_bs256_simmim_224_p4.py',
    '../_base_/schedules/adamw_coslr_a2mim.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='SimMIM',
    backbone=dict(type='MIMConvNeXt', arch='small', mask_layer=0, replace=False, out_indices=(3,)),
    neck=dict(type='SimMIMLinearDecoder'),
    head=dict(type='SimMIMHead'),
)

max_epochs = 300
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='float16',
    loss_scale='dynamic',
    optimizer=dict(lr=2e-4 * 2048 / 512),
    paramwise_cfg=dict(_delete_=True),
)
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=2048)
default_hooks = dict(checkpoint=dict(interval=10))
resume = True
custom_hooks = [dict(type='ChannelsLastHook')]
