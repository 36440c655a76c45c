_base_ = './vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'

model = dict(
    backbone=dict(arch='l', frozen_stages=24),
    neck=dict(input_features=1024),
    head=dict(in_channels=1024),
)
