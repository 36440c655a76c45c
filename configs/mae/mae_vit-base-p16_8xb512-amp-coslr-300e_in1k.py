_base_ = [
    '../_base_/models/mae_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs512_mae.py',
    '../_base_/schedules/adamw_coslr_mae.py',
    '../_base_/default_runtime.py',
]

train_cfg = dict(max_epochs=300)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
# resume from work_dir's latest checkpoint when one exists (long runs on preemptible clusters)
resume = True
