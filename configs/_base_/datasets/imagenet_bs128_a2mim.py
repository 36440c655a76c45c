# ImageNet-1k for A2MIM's ViT recipes (openmixup a2mim_rgb_m_sz224): the CNN data (imagenet_bs256_a2mim_rrc08.py) with
# SimMIM's crop scale (0.67, 1) and 128 images per GPU; 32-px blocks masked 60% over the 16-px patch grid.
_base_ = ['./imagenet_bs256_a2mim_rrc08.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.67, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        interpolation='bilinear',
    ),
    dict(type='RandomFlip', prob=0.5),
    dict(type='SimMIMMaskGenerator', input_size=224, mask_patch_size=32, model_patch_size=16, mask_ratio=0.6),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=128, dataset=dict(pipeline=train_pipeline))
