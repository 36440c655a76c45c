# SimMIM Swin-L 800e (published recipe): the Swin-B 800e schedule with Swin-L, window 12 (the last 6x6 stage is
# padded to the window: pad_small_map), drop path 0.1; the decoder's 1536 input channels come from the backbone.
_base_ = './simmim_swin-base-w6_16xb128-amp-coslr-800e_in1k-192px.py'

model = dict(backbone=dict(arch='large', window_size=12, pad_small_map=True))
