# SimMIM Swin-L 800e (simmim_swin-large-w12_16xb128-amp-coslr-800e_in1k-192px.py) with FSDP2 sharding: one FSDP unit
# per Swin block; bf16 compute with fp32 gradient reduction on GPUs.
_base_ = './simmim_swin-base-w6_16xb128-amp-coslr-800e_in1k-192px.py'

model = dict(backbone=dict(arch='large', window_size=12, pad_small_map=True))
model_wrapper_cfg = dict(type='FullyShardWrapper')
