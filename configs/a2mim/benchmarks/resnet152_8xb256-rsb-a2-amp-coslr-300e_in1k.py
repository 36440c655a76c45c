# ResNet-152 fine-tuned with RSB A2 (openmixup r152_rsb_a2_ft_sz224_8xb256_cos_fp16_ep300.py): the ResNet-50 A2 recipe
# with depth 152 and drop path 0.15 (openmixup's per-depth value; its README links the ResNet-50 file for every depth).
_base_ = './resnet50_8xb256-rsb-a2-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(depth=152, drop_path_rate=0.15))
