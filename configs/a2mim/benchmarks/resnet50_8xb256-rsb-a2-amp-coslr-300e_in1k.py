# Fine-tuning an A2MIM (or SimMIM) ResNet-50 with ResNet Strikes Back A2, the A2MIM table's protocol (openmixup
# r50_rsb_a2_ft_sz224_8xb256_cos_fp16_ep300.py; 80.4 top-1 after 300 pretraining epochs): 8 x 256 = 2048 images per
# step at 224 px with repeated augmentation (3 copies), RandAugment m7, Mixup 0.1 / CutMix 1.0, BCE, drop path 0.05,
# LAMB lr 5e-3, wd 0.02, 5 warmup epochs, cosine to 1e-6 over 300 epochs, fp16, SyncBN, weight EMA (decay 0.9999,
# warmed up linearly from 0.9 x 0.9999 over 20 epochs of 626 steps); validation on the EMA weights, resize 236 ->
# centre crop 224. ResNet-101/152/200 are this recipe with the depth and drop path changed.
#   GPUS=8 bash tools/benchmarks/classification/mim_dist_train.sh CONFIG PRETRAINED_CHECKPOINT
_base_ = [
    '../../_base_/models/resnet50_rsb.py',
    '../../_base_/datasets/imagenet_bs256_rsb_a2.py',
    '../../_base_/schedules/lamb_coslr_rsb.py',
    '../../_base_/default_runtime.py',
]

max_epochs = 300
model = dict(backbone=dict(drop_path_rate=0.05))
train_cfg = dict(max_epochs=max_epochs)
# openmixup's EMAHook(momentum=0.9999, warmup='linear', warmup_iters=20 * 626, warmup_ratio=0.9) in mmengine's
# convention (momentum = the new weights' share); the checkpoints hold the EMA weights as state_dict
custom_hooks = [
    dict(type='ChannelsLastHook'),
    dict(
        type='EMAHook',
        ema_type='WarmupExponentialMovingAverage',
        momentum=1e-4,
        warmup_iters=20 * 626,
        warmup_ratio=0.9,
    ),
]
default_hooks = dict(
    logger=dict(interval=100),
    checkpoint=dict(interval=10, max_keep_ckpts=1, save_best='auto'),
)
