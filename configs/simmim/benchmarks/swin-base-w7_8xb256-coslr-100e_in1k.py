# Fine-tuning a SimMIM Swin-B (pretrained at 192 px, window 6) at 224 px with window 7: the relative-position bias
# tables are resized when the checkpoint loads (see docs/simmim.md).
_base_ = './swin-base-w6_8xb256-coslr-100e_in1k-192px.py'

img_size = 224
model = dict(backbone=dict(img_size=img_size, window_size=7))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='TimmRandAugment', config_str='rand-m9-mstd0.5-inc1', interpolation='bicubic', img_size=img_size),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
