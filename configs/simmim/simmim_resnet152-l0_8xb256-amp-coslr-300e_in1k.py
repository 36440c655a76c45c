# SimMIM ResNet-152 (openmixup r152_sz224_8xb256_fp16_ep300.py): the ResNet-50 recipe with depth 152.
_base_ = './simmim_resnet50-l0_8xb256-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(depth=152))
