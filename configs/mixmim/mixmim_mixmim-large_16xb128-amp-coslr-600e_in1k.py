# MixMIM-L ("Swin-L/W14", 192-wide stem), official 600-epoch recipe; reported 85.9 top-1 after fine-tuning.
_base_ = './mixmim_mixmim-base_16xb128-amp-coslr-600e_in1k.py'

model = dict(backbone=dict(arch='large'))
