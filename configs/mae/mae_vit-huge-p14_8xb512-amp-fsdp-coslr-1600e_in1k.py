# MAE ViT-H/14 1600e (mae_vit-huge-p14_8xb512-amp-coslr-1600e_in1k.py) with FSDP2 sharding: weights, gradients and
# AdamW state split over the GPUs, one FSDP unit per encoder / decoder block; bf16 compute with fp32 gradient
# reduction on GPUs. Add model_wrapper_cfg.activation_checkpointing=True where the activations do not fit.
_base_ = './mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='h', patch_size=14))
max_epochs = 1600
train_cfg = dict(max_epochs=max_epochs)
model_wrapper_cfg = dict(type='FullyShardWrapper')
