# A2MIM ViT-B/16, mask token at l0 (openmixup vit_base_l0_sz224_8xb128_accu2_step_ep800): 224 px, 32-px blocks masked
# 60% over the 16-px patch grid, mean-RGB fill, learnable mask token added to the patch embeddings (no gamma);
# LayerScale 0.1, drop path 0.1; decoder 1x1 conv + PixelShuffle(16); L1 on masked pixels + 0.1 x focal frequency
# loss (visible pixels replaced by 'mixed'). 8 x 128 x 2 accumulation = 2048 images per update, AdamW lr
# 1e-4 x 2048/512, 10 warmup epochs, step x0.1 at epoch 700, gradient clipping at 5, fp32
# (schedules/adamw_step_a2mim.py).
_base_ = [
    '../_base_/datasets/imagenet_bs128_a2mim.py',
    '../_base_/schedules/adamw_step_a2mim.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='A2MIM',
    backbone=dict(
        type='A2MIMViT',
        arch='b',
        img_size=224,
        patch_size=16,
        mask_layer=0,
        replace=False,
        layer_scale_init_value=0.1,
        drop_path_rate=0.1,
    ),
    neck=dict(type='SimMIMLinearDecoder'),
    head=dict(
        type='A2MIMHead',
        loss=dict(type='FocalL1Loss', gamma=0.0),  # gamma 0: the plain L1 (openmixup's 'l1_loss')
        fft_weight=0.1,
        fft_focal=True,
        fft_unmask_replace='mixed',
        fft_unmask_weight=0.0,
    ),
)

optim_wrapper = dict(accumulative_counts=2)  # 8 GPUs x 128 x 2 = 2048 images per update
max_epochs = 800
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=2048)
default_hooks = dict(checkpoint=dict(interval=10))
resume = True
