# ImageNet-1k for A2MIM's CNN recipes (openmixup a2mim_rgb_m_sz224_rrc08): RandomResizedCrop 224 scale (0.8, 1),
# aspect (3/4, 4/3), bilinear, flip, then 32-px blocks masked 60% (30 of 49), the mask repeated over the grid of the
# mask site: model_patch_size is its stride, 16 for ResNet l3 (a 14 x 14 mask; ConvNeXt l3 sets 32). The model fills
# the masked blocks with the image's mean RGB.
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'
img_size = 224
data_preprocessor = dict(
    type='MIMDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.8, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        interpolation='bilinear',
    ),
    dict(type='RandomFlip', prob=0.5),
    dict(type='SimMIMMaskGenerator', input_size=img_size, mask_patch_size=32, model_patch_size=16, mask_ratio=0.6),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=256,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='ExactResumeSampler', shuffle=True),
    collate_fn=dict(type='mimlab.default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
)
