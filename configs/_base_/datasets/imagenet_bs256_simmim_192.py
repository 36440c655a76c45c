# ImageNet-1k for SimMIM at 192 px: RandomResizedCrop scale (0.67, 1), aspect (3/4, 4/3), flip, then 32-px block
# masks over the 4-px patch grid (22 of the 36 blocks). Interpolation is bilinear, not bicubic: the official code uses
# torchvision's default (bilinear, antialiased PIL) and mmpretrain's config mmcv's default (bilinear).
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'
img_size = 192
data_preprocessor = dict(
    type='MIMDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.67, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        interpolation='bilinear',
    ),
    dict(type='RandomFlip', prob=0.5),
    dict(type='SimMIMMaskGenerator', input_size=img_size, mask_patch_size=32, model_patch_size=4, mask_ratio=0.6),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=256,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='ExactResumeSampler', shuffle=True),
    collate_fn=dict(type='mimlab.default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
)
