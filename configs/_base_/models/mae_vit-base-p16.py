# MAE ViT-B/16 (He et al. 2021): 75% masking, 8-block 512-wide decoder, L2 on per-patch-normalised pixels.
# The decoder's input width, patch size and patch count come from the backbone (see mimlab.models.algorithms.MAE).
model = dict(
    type='MAE',
    backbone=dict(type='MAEViT', arch='b', patch_size=16, mask_ratio=0.75),
    neck=dict(type='MAEPretrainDecoder', decoder_embed_dims=512, decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0),
    head=dict(type='MAEPretrainHead', norm_pix=True, loss=dict(type='PixelReconstructionLoss', criterion='L2')),
)
