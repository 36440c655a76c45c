# SimMIM ViT-B/16, the A2MIM table's baseline (openmixup selfsup/simmim/imagenet/vit_base_sz224_8xb128_accu2_step_
# fp16_ep800.py; 83.8 top-1): 224 px, 32-px blocks masked 60% over the 16-px patch grid, the mask token replaces the
# masked patch embeddings, BEiT-style relative position bias in every block, LayerScale 0.1, drop path 0.1, decoder
# 1x1 conv + PixelShuffle(16), L1 on masked pixels. 8 x 128 x 2 accumulation = 2048 images per update, AdamW lr
# 1e-4 x 2048/512, 10 warmup epochs from 2e-6 x lr, x0.1 at epoch 700 of 800, gradient clipping at 5, fp32 (openmixup's
# use_fp16=False here; ViT-S/L use fp16): A2MIM's ViT schedule (schedules/adamw_step_a2mim.py).
_base_ = [
    '../_base_/datasets/imagenet_bs128_a2mim.py',
    '../_base_/schedules/adamw_step_a2mim.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='SimMIM',
    backbone=dict(
        type='SimMIMViT',
        arch='b',
        img_size=224,
        patch_size=16,
        use_rel_pos_bias=True,
        layer_scale_init_value=0.1,
        drop_path_rate=0.1,
    ),
    neck=dict(type='SimMIMLinearDecoder'),
    head=dict(type='SimMIMHead'),
)

optim_wrapper = dict(accumulative_counts=2)  # 8 GPUs x 128 x 2 = 2048 images per update
max_epochs = 800
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=2048)
default_hooks = dict(checkpoint=dict(interval=10))
resume = True
