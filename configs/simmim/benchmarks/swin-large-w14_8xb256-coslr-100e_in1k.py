# Fine-tuning a SimMIM Swin-L (pretrained with window 12 at 192 px) at 224 px, window 14: layer decay 0.7, drop path
# 0.2; the reference cosine uses T_max=100 over its 80 post-warmup epochs, kept here.
_base_ = './swin-base-w7_8xb256-coslr-100e_in1k.py'

model = dict(
    backbone=dict(arch='large', window_size=14, pad_small_map=True, drop_path_rate=0.2),
    head=dict(in_channels=1536),
)
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.7))
param_scheduler = [
    dict(type='LinearLR', start_factor=2.5e-7 / 1.25e-3, by_epoch=True, begin=0, end=20, convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=100,
        eta_min=2.5e-7 * 2048 / 512,
        by_epoch=True,
        begin=20,
        convert_to_iter_based=True,
    ),
]
