# MixMIM-L 600e (mixmim_mixmim-large_16xb128-amp-coslr-600e_in1k.py) with FSDP2 sharding: one FSDP unit per MixMIM
# block and per decoder block; bf16 compute with fp32 gradient reduction on GPUs.
_base_ = './mixmim_mixmim-base_16xb128-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='large'))
max_epochs = 600
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
model_wrapper_cfg = dict(type='FullyShardWrapper')
