_base_ = './pixmim_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'

max_epochs = 800
train_cfg = dict(max_epochs=max_epochs)
# the reference 800e recipe warms up from 1e-9 x lr (300e: 1e-4 x lr)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-9, by_epoch=True, begin=0, end=40, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=40, convert_to_iter_based=True),
]
