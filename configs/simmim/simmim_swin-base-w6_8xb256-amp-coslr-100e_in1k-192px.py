# SimMIM Swin-B, window 6 at 192 px, 100 epochs (published recipe): 8 x 256 = 2048 images per step, AdamW lr
# 2e-4 x 2048/512 = 8e-4, 10 warmup epochs from 4e-6, cosine to 4e-5 (schedules/adamw_coslr_simmim.py).
_base_ = [
    '../_base_/models/simmim_swin-base-w6.py',
    '../_base_/datasets/imagenet_bs256_simmim_192.py',
    '../_base_/schedules/adamw_coslr_simmim.py',
    '../_base_/default_runtime.py',
]

max_epochs = 100
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(checkpoint=dict(interval=10))
# resume from work_dir's latest checkpoint when one exists (long runs on preemptible clusters)
resume = True
