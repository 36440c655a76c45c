_base_ = './mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='l'))
max_epochs = 400
train_cfg = dict(max_epochs=max_epochs)
