# SimMIM's 800-epoch schedule (the Swin-B/L 800e recipes): the optimiser of adamw_coslr_simmim.py at lr 1e-4 per 512
# images scaled to the total batch of 2048 (4e-4), linear warmup over 10 epochs from 5e-7 per 512 images, then
# constant with one x0.1 step at epoch 700 (no cosine, as the reference), both updated every iteration.
_base_ = ['./adamw_coslr_simmim.py']

warmup_epochs = 10
base_lr = 1e-4  # per 512 images
lr_scale = 2048 / 512  # total batch / 512
optim_wrapper = dict(optimizer=dict(lr=base_lr * lr_scale))
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
