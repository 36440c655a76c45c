# SimMIM ViT-S/16 (openmixup vit_small_sz224_8xb256_step_fp16_ep800.py; openmixup's 'small': 768 wide, 8 blocks;
# 81.7 top-1): the ViT-B recipe with 8 x 256 images per update, no accumulation, fp16.
_base_ = './simmim_vit-base-p16-l0_8xb128-accu2-step-800e_in1k.py'

model = dict(backbone=dict(arch='s'))
train_dataloader = dict(batch_size=256)
optim_wrapper = dict(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic', accumulative_counts=1)
