# SimMIM ResNet-101 (openmixup r101_sz224_8xb256_fp16_ep300.py): the ResNet-50 recipe with depth 101.
_base_ = './simmim_resnet50-l0_8xb256-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(depth=101))
