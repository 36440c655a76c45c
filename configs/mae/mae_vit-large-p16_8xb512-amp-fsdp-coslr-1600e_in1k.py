# MAE ViT-L/16 1600e (mae_vit-large-p16_8xb512-amp-coslr-1600e_in1k.py) with FSDP2 sharding: weights, gradients and
# AdamW state split over the GPUs, one FSDP unit per encoder / decoder block. On GPUs the AMP recipe becomes bf16
# compute with fp32 gradient reduction (FSDP2's MixedPrecisionPolicy; mimlab.engine.resolve_amp). Checkpoints are
# sharded; tools/model_converters/merge_sharded_checkpoint.py makes one ordinary .pth. docs/running_at_scale.md#sharding
_base_ = './mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='l'))
max_epochs = 1600
train_cfg = dict(max_epochs=max_epochs)
model_wrapper_cfg = dict(type='FullyShardWrapper')
