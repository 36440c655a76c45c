# ImageNet-1k for PixMIM pretraining: MAE's data with PixMIM's conservative crop (SimpleResizedCrop: resize to 224,
# 4-px reflect padding, random 224 crop, flip) in place of the RandomResizedCrop.
_base_ = ['./imagenet_bs512_mae.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='SimpleResizedCrop', scale=224, padding=4, padding_mode='reflect', flip_prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
