# SimMIM Swin-B 800e (published recipe): 16 x 128 = 2048 images per step, lr 1e-4 x 2048/512 = 4e-4, 10 warmup
# epochs from 5e-7 x 2048/512 = 2e-6, then constant with one x0.1 step at epoch 700 (schedules/adamw_step_simmim.py).
_base_ = [
    '../_base_/models/simmim_swin-base-w6.py',
    '../_base_/datasets/imagenet_bs256_simmim_192.py',
    '../_base_/schedules/adamw_step_simmim.py',
    '../_base_/default_runtime.py',
]

train_dataloader = dict(batch_size=128)
max_epochs = 800
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(checkpoint=dict(interval=10))
# resume from work_dir's latest checkpoint when one exists (long runs on preemptible clusters)
resume = True
