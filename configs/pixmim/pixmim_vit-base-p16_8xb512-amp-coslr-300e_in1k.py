# PixMIM = the MAE recipe + a low-frequency target (radius 40 at 224 px) + the conservative SimpleResizedCrop.
_base_ = '../mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'

model = dict(type='PixMIM', target_generator=dict(type='LowFreqTargetGenerator', radius=40, img_size=224))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='SimpleResizedCrop', scale=224, padding=4, padding_mode='reflect', flip_prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

randomness = dict(seed=2, diff_rank_seed=True)
