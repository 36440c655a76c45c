# A2MIM ResNet-152 l3, 300 epochs (openmixup r152_l3_sz224_init_8xb256_cos_ep300): as ResNet-50 without the Fourier
# loss (fft_weight 0 in openmixup; the copy in the A2MIM repository says 0.1: set head.fft_weight=0.1 for that).
_base_ = './a2mim_resnet50-l3_8xb256-coslr-300e_in1k.py'

model = dict(backbone=dict(depth=152), head=dict(fft_weight=0.0, fft_focal=False))
