# PixMIM = the MAE recipe + a low-frequency target (radius 40 at 224 px) + the conservative SimpleResizedCrop.
_base_ = [
    '../_base_/models/pixmim_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs512_pixmim.py',
    '../_base_/schedules/adamw_coslr_mae.py',
    '../_base_/default_runtime.py',
]

max_epochs = 300
train_cfg = dict(max_epochs=max_epochs)
# resume from work_dir's latest checkpoint when one exists (long runs on preemptible clusters)
resume = True
randomness = dict(seed=2, diff_rank_seed=True)
