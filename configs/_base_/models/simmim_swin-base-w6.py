# SimMIM Swin-B, window 6 at 192 px: 32-px mask blocks, linear decoder (1x1 conv + PixelShuffle 32), L1 on masked
# pixels. The decoder's width/stride and the head's patch size come from the backbone.
model = dict(
    type='SimMIM',
    backbone=dict(type='SimMIMSwinTransformer', arch='base', img_size=192, window_size=6, drop_path_rate=0.1),
    neck=dict(type='SimMIMLinearDecoder'),
    head=dict(type='SimMIMHead', loss=dict(type='PixelReconstructionLoss', criterion='L1', channel=3)),
)
