# SimMIM ViT-L/16 (openmixup vit_large_sz224_8xb128_accu2_step_fp16_ep800.py; 85.6 top-1): the ViT-B recipe, large,
# fp16.
_base_ = './simmim_vit-base-p16-l0_8xb128-accu2-step-800e_in1k.py'

model = dict(backbone=dict(arch='l'))
optim_wrapper = dict(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
