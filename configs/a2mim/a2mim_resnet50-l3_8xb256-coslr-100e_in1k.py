# A2MIM ResNet-50 l3, 100 epochs (openmixup r50_l3_sz224_init_8xb256_cos_ep100): as the 300e recipe, except that
# this recipe lists mask_gamma with the mask token (0.1 x lr, no decay).
_base_ = './a2mim_resnet50-l3_8xb256-coslr-300e_in1k.py'

max_epochs = 100
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(paramwise_cfg=dict(lr_mult={'mask_gamma': 0.1}, no_weight_decay=['mask_gamma']))
