# ResNet Strikes Back optimisation as openmixup's A2MIM fine-tuning recipes run it
# (r50_rsb_a2_ft_sz224_8xb256_cos_fp16_ep300.py / r50_rsb_a3_ft_sz160_4xb512_cos_fp16_ep100.py): LAMB (timm's, eps
# 1e-6, global grad-norm clip at 1 inside the optimizer), total batch 2048, weight decay 0.02 with none on BN weights
# and biases (every 1-D parameter) except the downsample BN weights, which openmixup's regex (bn|gn)(\d+)?.(weight|bias)
# misses (paramwise_cfg.weight_decay; docs/a2mim.md), fp16 mixed precision with dynamic loss scaling.
# Schedule as mmcv's CosineAnnealing(by_epoch=True, min_lr=1e-6) with a linear warmup over 5 epochs from 1e-5 x lr:
# the cosine runs over the whole run from epoch 0, stepped once per epoch, and during the first 5 epochs each
# iteration's lr is that cosine value times the warmup factor 1e-5 + (1 - 1e-5) * t / T_w. Here both schedulers are
# active together over the warmup (mmengine chains them), which gives those values (to 1e-6 relative;
# tests/test_a2mim_finetune.py). A recipe sets `base_lr` and `max_epochs`; the RSB A2 value is the default.
warmup_epochs = 5
base_lr = 5e-3  # RSB A2 at 2048 images per step (A3: 8e-3)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='float16',
    loss_scale='dynamic',
    optimizer=dict(type='Lamb', lr=base_lr, weight_decay=0.02),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(weight_decay=['downsample.1.weight']),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=0),
]
train_cfg = dict(type='ExactResumeEpochBasedTrainLoop', val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=2048)
