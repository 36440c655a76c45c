# MixMIM-L ("Swin-L/W14", 192-wide stem), official 600-epoch recipe (MixMIM-B's, mixed precision); reported 85.9 top-1
# after fine-tuning.
_base_ = './mixmim_mixmim-base_16xb128-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='large'))
max_epochs = 600
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
