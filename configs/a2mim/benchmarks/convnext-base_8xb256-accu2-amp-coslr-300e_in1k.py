# ConvNeXt-B (openmixup convnext_b_spark_ft_sz224_8xb256_cos_fp16_ep300.py; A2MIM 84.1 top-1): the ConvNeXt-S recipe
# with the base arch (1024 channels out) and drop path 0.5.
_base_ = './convnext-small_8xb256-accu2-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='base', drop_path_rate=0.5), head=dict(in_channels=1024))
