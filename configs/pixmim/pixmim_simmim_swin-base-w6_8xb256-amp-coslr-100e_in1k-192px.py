# SimMIM Swin-B + PixMIM: the SimMIM 100e recipe with PixMIM's two plug-ins, the low-frequency target and the
# conservative SimpleResizedCrop (as the MAE-based PixMIM recipe).
# The filter radius scales with the image side: 40 bins at 224 px -> round(40 * 192 / 224) = 34 bins at 192 px.
_base_ = '../simmim/simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py'

img_size = 192
model = dict(target_generator=dict(type='LowFreqTargetGenerator', radius=round(40 * img_size / 224), img_size=img_size))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='SimpleResizedCrop', scale=img_size, padding=4, padding_mode='reflect', flip_prob=0.5),
    dict(type='SimMIMMaskGenerator', input_size=img_size, mask_patch_size=32, model_patch_size=4, mask_ratio=0.6),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
randomness = dict(seed=2, diff_rank_seed=True)
