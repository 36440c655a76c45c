# mimlab's built-in procedural dataset (no download) for the tiny A2MIM demo: 2048 images of 64 px, RandomResizedCrop
# scale (0.8, 1) bilinear + flip, then 16-px blocks masked 60% (10 of 16) over the 16-px grid of ResNet's layer3
# output (4 x 4).
img_size = 64
batch_size = 64
data_preprocessor = dict(
    type='MIMDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
)
train_pipeline = [
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.8, 1.0), interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='SimMIMMaskGenerator', input_size=img_size, mask_patch_size=16, model_patch_size=16, mask_ratio=0.6),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='ExactResumeSampler', shuffle=True),
    collate_fn=dict(type='mimlab.default_collate'),
    dataset=dict(type='BuiltinDataset', split='train', num_samples=2048, img_size=64, seed=0, pipeline=train_pipeline),
)
