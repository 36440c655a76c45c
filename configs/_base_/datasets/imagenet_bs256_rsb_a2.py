# ImageNet-1k data of ResNet Strikes Back A2 as openmixup's A2MIM fine-tuning recipes run it
# (openmixup configs/benchmarks/classification/_base_/datasets/imagenet_rsb_a2_ft_sz224_8xbs256.py): train
# RandomResizedCrop 224 bicubic (scale 0.08-1), flip, RandAugment magnitude 7 with std 0.5 over timm's "increasing"
# ops (2 ops, 10 levels: timm's 'rand-m7-mstd0.5-inc1', whose ops and levels openmixup's policy list restates), and
# repeated augmentation (3 copies of each image per epoch over the ranks); test: resize the short side to 236
# (bicubic), centre crop 224 (crop ratio 0.95). Mixup / CutMix run on the device (model.train_cfg).
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'
img_size = 224
test_resize = 236
data_preprocessor = dict(
    type='MIMDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='TimmRandAugment', config_str='rand-m7-mstd0.5-inc1', interpolation='bicubic', img_size=img_size),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=test_resize, edge='short', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=256,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    # DeiT's / timm's repeated augmentation with mid-epoch exact resume (mimlab/datasets/repeat_aug_sampler.py)
    sampler=dict(type='RepeatAugSampler', shuffle=True, num_repeats=3),
    collate_fn=dict(type='mimlab.default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='ExactResumeSampler', shuffle=False),
    collate_fn=dict(type='mimlab.default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
