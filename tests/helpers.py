"""Small builders shared by the tests."""

from mimlab.registry import MODELS


def tiny_mae(
    algorithm: str = 'MAE',
    img_size: int = 32,
    patch_size: int = 8,
    decoder_depth: int = 1,
    backbone_extra: dict | None = None,
    **extra,
):
    """A tiny MAE-family model (ViT 'test' arch), initialised; ``backbone_extra`` adds backbone arguments."""
    model = MODELS.build(
        dict(
            type=algorithm,
            backbone=dict(
                type='MAEViT',
                arch='test',
                img_size=img_size,
                patch_size=patch_size,
                mask_ratio=0.75,
                **(backbone_extra or {}),
            ),
            neck=dict(
                type='MAEPretrainDecoder', decoder_embed_dims=16, decoder_depth=decoder_depth, decoder_num_heads=2
            ),
            head=dict(type='MAEPretrainHead', norm_pix=True),
            **extra,
        )
    )
    model.init_weights()
    return model
