# MAE ViT-H/14 fine-tuning at 224 px, the official recipe (FINETUNE.md: blr 1e-3 x 1024/256, layer decay 0.75, drop
# path 0.3, 50 epochs), with FSDP2 sharding (one FSDP unit per block), as mmpretrain's file of this name.
_base_ = './vit-base-p16_8xb128-coslr-100e_in1k.py'

model = dict(backbone=dict(arch='h', patch_size=14, drop_path_rate=0.3), head=dict(in_channels=1280))
optim_wrapper = dict(optimizer=dict(lr=1e-3 * 1024 / 256), paramwise_cfg=dict(layer_decay_rate=0.75))
train_cfg = dict(max_epochs=50)
model_wrapper_cfg = dict(type='FullyShardWrapper')
