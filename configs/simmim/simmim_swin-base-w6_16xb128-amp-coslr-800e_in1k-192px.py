# SimMIM Swin-B 800e (published recipe): 16 x 128 = 2048 images per step, lr 1e-4 x 2048/512 = 4e-4, 10 warmup
# epochs from 5e-7 x 2048/512 = 2e-6, then constant with one x0.1 step at epoch 700 (no cosine, as the reference).
_base_ = './simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py'

warmup_epochs = 10
base_lr = 1e-4  # per 512 images
optim_wrapper = dict(optimizer=dict(lr=base_lr * 2048 / 512))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=5e-7 / base_lr,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True,
    ),
    dict(
        type='MultiStepLR', milestones=[700], gamma=0.1, by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True
    ),
]
train_dataloader = dict(batch_size=128)
train_cfg = dict(max_epochs=800)
