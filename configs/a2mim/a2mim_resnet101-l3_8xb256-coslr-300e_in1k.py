# A2MIM ResNet-101 l3, 300 epochs (openmixup r101_l3_sz224_init_8xb256_cos_ep300): as ResNet-50, with the Fourier
# loss at weight 0.1 as the focal L1 on the complex spectra (not the focal frequency loss).
_base_ = './a2mim_resnet50-l3_8xb256-coslr-300e_in1k.py'

model = dict(backbone=dict(depth=101), head=dict(fft_weight=0.1, fft_focal=False))
