# SimMIM Swin-B 800e (published recipe): 16 x 128 images per step, lr 1e-4 x 2048/512, warmup 10 epochs from
# 5e-7 x 2048/512, then a step decay (x0.1) at epoch 700.
_base_ = './simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py'

base_lr = 1e-4
optim_wrapper = dict(optimizer=dict(lr=base_lr * 2048 / 512))
param_scheduler = [
    dict(type='LinearLR', start_factor=5e-7 / base_lr, by_epoch=True, begin=0, end=10, convert_to_iter_based=True),
    dict(type='MultiStepLR', milestones=[700], by_epoch=True, begin=10, convert_to_iter_based=True),
]
train_dataloader = dict(batch_size=128)
train_cfg = dict(max_epochs=800)
