# Inference / evaluation config of a fine-tuned MixMIM-B (mmpretrain's mixmim-base_3rdparty_in1k: the official
# checkpoint converted, 84.6 top-1): `python tools/test.py THIS_CONFIG CHECKPOINT`. Official checkpoints convert with
# `python tools/model_converters/import_weights.py SRC DST --source official-mixmim`.
_base_ = './mixmim-base_8xb128-coslr-100e_in1k.py'

model = dict(backbone=dict(init_cfg=None))
val_dataloader = dict(batch_size=64)
test_dataloader = dict(batch_size=64)
