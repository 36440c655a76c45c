# ImageNet-1k linear probing data (official MAE recipe): RandomResizedCrop 224 (bicubic, 0.08-1) + flip, no other
# augmentation; evaluation: short side 256 (bicubic), centre crop 224.
_base_ = ['./imagenet_bs128_finetune.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=2048, drop_last=True, dataset=dict(pipeline=train_pipeline))
