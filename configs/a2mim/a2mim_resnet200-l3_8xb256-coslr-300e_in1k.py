# A2MIM ResNet-200 l3, 300 epochs (openmixup r200_l3_sz224_init_8xb256_cos_ep300): as ResNet-50 without the Fourier
# loss (fft_weight 0).
_base_ = './a2mim_resnet50-l3_8xb256-coslr-300e_in1k.py'

model = dict(backbone=dict(depth=200), head=dict(fft_weight=0.0, fft_focal=False))
