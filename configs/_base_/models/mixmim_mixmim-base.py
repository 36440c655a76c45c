# MixMIM-B (Liu et al., CVPR 2023): "Swin-B/W14" without shifted windows, windows 14/14/14/7 at 224 px, a fixed
# sin-cos position table; two images mixed 50/50 at 32-px granularity (batch-shared mask, partner = x.flip(0));
# 8-block 512-wide decoder run on both branches; L2 on per-token normalised pixels over all tokens (after unmixing).
# The decoder's input width, token count and stride come from the backbone (mimlab.models.algorithms.MixMIM).
model = dict(
    type='MixMIM',
    backbone=dict(type='MixMIMPretrainTransformer', arch='base', drop_rate=0.0, drop_path_rate=0.0, mask_ratio=0.5),
    neck=dict(type='MixMIMPretrainDecoder', decoder_embed_dims=512, decoder_depth=8, decoder_num_heads=16),
    head=dict(type='MixMIMPretrainHead', norm_pix=True, loss=dict(type='PixelReconstructionLoss', criterion='L2')),
)
