# ResNet-101 fine-tuned with RSB A2 (openmixup r101_rsb_a2_ft_sz224_8xb256_cos_fp16_ep300.py): the ResNet-50 A2 recipe
# with depth 101 and drop path 0.1 (openmixup's per-depth value; its README links the ResNet-50 file for every depth).
_base_ = './resnet50_8xb256-rsb-a2-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(depth=101, drop_path_rate=0.1))
