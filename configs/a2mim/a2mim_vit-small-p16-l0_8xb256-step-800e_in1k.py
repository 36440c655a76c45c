# A2MIM ViT-S/16 l0, 800 epochs (openmixup vit_small_l0_sz224_8xb256_step_ep800): ViT-B's recipe on openmixup's
# 'small' ViT (768 wide, 8 blocks, 8 heads, MLP 2304: 48.8M parameters, not DeiT-S) with 8 x 256 images and no
# accumulation.
_base_ = './a2mim_vit-base-p16-l0_8xb128-accu2-step-800e_in1k.py'

model = dict(backbone=dict(arch='s'))
train_dataloader = dict(batch_size=256)
optim_wrapper = dict(accumulative_counts=1)
