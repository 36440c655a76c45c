# MAE ViT-B/16 pretraining, 300 epochs (official recipe): 8 x 512 = 4096 images per step, AdamW lr 1.5e-4 x 4096/256,
# 40 warmup epochs then cosine to 0 (schedules/adamw_coslr_mae.py). Every other MAE pretraining recipe (400-1600
# epochs, ViT-L/H) is this one with its arch and max_epochs changed.
_base_ = [
    '../_base_/models/mae_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs512_mae.py',
    '../_base_/schedules/adamw_coslr_mae.py',
    '../_base_/default_runtime.py',
]

max_epochs = 300
train_cfg = dict(max_epochs=max_epochs)
# resume from work_dir's latest checkpoint when one exists (long runs on preemptible clusters)
resume = True
