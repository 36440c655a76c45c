# ImageNet-1k for the SimMIM CNN baselines of the A2MIM table (openmixup selfsup/_base_/datasets/imagenet/
# simmim_sz224_bs64.py): RandomResizedCrop 224 scale (0.67, 1), aspect (3/4, 4/3), bilinear, flip, then 32-px blocks
# masked 60% (30 of 49) repeated over the 4-px grid of the stem output (56 x 56), where the mask token replaces the
# features. The pixels are not filled (openmixup's mask_color='zero' leaves the image as it is).
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
    dict(type='SimMIMMaskGenerator', input_size=224, mask_patch_size=32, model_patch_size=4, mask_ratio=0.6),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
