# ImageNet-1k data of ResNet Strikes Back A3 as openmixup's A2MIM fine-tuning recipes run it
# (openmixup configs/benchmarks/classification/_base_/datasets/imagenet_rsb_a3_ft_sz160_4xbs512.py): A2's data
# (./imagenet_bs256_rsb_a2.py) trained at 160 px: RandomResizedCrop 160 bicubic (scale 0.08-1), flip, RandAugment
# magnitude 6 with std 0.5 over timm's "increasing" ops (timm's 'rand-m6-mstd0.5-inc1'), batch 512, no repeated
# augmentation; the same test at 224 px (short side 236, bicubic, centre crop 224).
_base_ = ['./imagenet_bs256_rsb_a2.py']

img_size = 160
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='TimmRandAugment', config_str='rand-m6-mstd0.5-inc1', interpolation='bicubic', img_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=512,
    num_workers=12,
    sampler=dict(_delete_=True, type='ExactResumeSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline),
)
