# ImageNet-1k fine-tuning data (official MAE recipe): RandomResizedCrop 224 bicubic (0.08-1), flip,
# RandAugment rand-m9-mstd0.5-inc1; RandomErasing 0.25 and Mixup/CutMix run on the device (model.train_cfg).
# Evaluation: resize the short side to 256 (bicubic), centre crop 224.
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'
img_size = 224
data_preprocessor = dict(
    type='MIMDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='TimmRandAugment', config_str='rand-m9-mstd0.5-inc1', interpolation='bicubic', img_size=img_size),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=int(img_size * 256 / 224), edge='short', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='ExactResumeSampler', shuffle=True),
    collate_fn=dict(type='mimlab.default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='ExactResumeSampler', shuffle=False),
    collate_fn=dict(type='mimlab.default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
