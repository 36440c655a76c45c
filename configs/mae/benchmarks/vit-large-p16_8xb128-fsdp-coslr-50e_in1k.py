# MAE ViT-L/16 fine-tuning (vit-large-p16_8xb128-coslr-50e_in1k.py: lr 1e-3 x 1024/256, layer decay 0.75, drop path
# 0.2, 50 epochs) with FSDP2 sharding, one FSDP unit per block; the layer-decay groups are built from the shards.
_base_ = './vit-base-p16_8xb128-coslr-100e_in1k.py'

model = dict(backbone=dict(arch='l', drop_path_rate=0.2), head=dict(in_channels=1024))
optim_wrapper = dict(optimizer=dict(lr=1e-3 * 1024 / 256), paramwise_cfg=dict(layer_decay_rate=0.75))
train_cfg = dict(max_epochs=50)
model_wrapper_cfg = dict(type='FullyShardWrapper')
