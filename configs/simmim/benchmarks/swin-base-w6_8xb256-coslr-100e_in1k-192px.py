# Fine-tuning a SimMIM Swin-B at 192 px, window 6 (published protocol): the 224-px recipe (window 7) at the
# pretraining resolution and window.
_base_ = './swin-base-w7_8xb256-coslr-100e_in1k.py'

img_size = 192
model = dict(backbone=dict(img_size=img_size, window_size=6))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='TimmRandAugment', config_str='rand-m9-mstd0.5-inc1', interpolation='bicubic', img_size=img_size),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=219, edge='short', interpolation='bicubic'),  # 192 / 0.875
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
