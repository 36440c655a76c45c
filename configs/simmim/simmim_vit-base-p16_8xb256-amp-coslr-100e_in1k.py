# SimMIM ViT-B/16 (the paper's ViT setting): 224 px, 32-px mask blocks over the 16-px patch grid (30 of the 49 blocks,
# ratio 0.6), drop path 0.1; the linear decoder maps each patch token back to 16 x 16 pixels (stride and width come
# from the backbone). Optimiser and 100-epoch schedule as the Swin-B recipe.
_base_ = './simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py'

img_size = 224
model = dict(
    backbone=dict(_delete_=True, type='SimMIMViT', arch='b', img_size=img_size, patch_size=16, drop_path_rate=0.1),
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
    dict(type='SimMIMMaskGenerator', input_size=img_size, mask_patch_size=32, model_patch_size=16, mask_ratio=0.6),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
