# MixMIM-H (embed 352, depths 2/2/18/2, ~600M parameters in the paper) with the MixMIM-L 600e recipe and FSDP2
# sharding. The references publish no MixMIM-H pretraining recipe of its own; this one changes only the arch.
_base_ = './mixmim_mixmim-base_16xb128-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='huge'))
max_epochs = 600
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
model_wrapper_cfg = dict(type='FullyShardWrapper')
