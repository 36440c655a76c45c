# ImageNet-1k for MAE-style pretraining: one RandomResizedCrop draw (scale 0.2-1), bicubic, flip.
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'
data_preprocessor = dict(
    type='MIMDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)
train_pipeline = [
    # = LoadImageFromFile + MAERandomResizedCrop(224, (0.2, 1.0), bicubic) + RandomFlip(0.5) fused: the same crop
    # draws, only the crop's region of the JPEG decoded (at 1/2-1/8 scale when the crop allows it), a torch uint8
    # resize, the flip as a view (docs/benchmarks.md)
    dict(
        type='LoadImageRandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.2, 1.0),
        interpolation='bicubic',
        flip_prob=0.5,
    ),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=512,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='ExactResumeSampler', shuffle=True),
    collate_fn=dict(type='mimlab.default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
)
