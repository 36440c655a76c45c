# PixMIM's linear probe: the MAE protocol with the one-draw, bicubic MAE crop (mmselfsup's "torchvision transform").
_base_ = '../../mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MAERandomResizedCrop', scale=224, crop_ratio_range=(0.08, 1.0), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
