# A2MIM ViT-L/16 l0, 800 epochs (openmixup vit_large_l0_sz224_8xb128_accu2_step_ep800): ViT-B's recipe on ViT-L.
_base_ = './a2mim_vit-base-p16-l0_8xb128-accu2-step-800e_in1k.py'

model = dict(backbone=dict(arch='l'))
