"""mmpretrain 1.2.0 as a side-by-side reference for the benchmark tools (``--reference mmpretrain``).

mmpretrain is a test-time reference, never a mimlab dependency: this module is the only place outside the tests that
imports it or knows its config schema. :data:`MMPRETRAIN` is the :class:`~mimlab.analysis.step_timing.Reference`
``benchmark.py`` times (the same MAE or MixMIM with the same weights, on the same batch); :func:`mmpretrain_pipeline`
is the MAE data pipeline ``benchmark_data.py`` times, after :func:`register_mmpretrain`. The tools load this file
from their own folder by its path, so it works however they are started.
"""

from torch import nn

from mimlab.analysis.step_timing import Reference


def register_mmpretrain() -> None:
    """Register mmpretrain's modules (its ``mmpretrain.``-scoped transforms and models), leaving the scope alone."""
    from mmpretrain.utils import register_all_modules

    register_all_modules(init_default_scope=False)


def _build_in_mmpretrain(cfg: dict, model: nn.Module) -> nn.Module:
    """Build ``cfg`` with mmpretrain 1.2.0's registry (ImageNet mean/std, BGR->RGB as mimlab's preprocessor) and load
    ``model``'s weights into it strictly."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS as PT_MODELS

    register_mmpretrain()
    cfg = dict(
        cfg,
        data_preprocessor=dict(
            type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
        ),
    )
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ref = PT_MODELS.build(cfg)
    ref.load_state_dict(model.state_dict(), strict=True)
    return ref


def build_mmpretrain_mae(model: nn.Module) -> nn.Module:
    """The same MAE built from mmpretrain 1.2.0 (test-time reference only), with ``model``'s weights loaded strictly.

    Raises:
        ImportError: mmpretrain is not installed.
        TypeError: ``model`` is not an MAE with a plain decoder.
    """
    if type(model).__name__ != 'MAE' or model.target_generator is not None:
        raise TypeError(f'--reference mmpretrain supports MAE only, not {type(model).__name__}')
    bb, neck, head = model.backbone, model.neck, model.head
    arch = dict(
        embed_dims=bb.embed_dims,
        num_layers=bb.num_layers,
        num_heads=bb.num_heads,
        feedforward_channels=bb.layers[0].ffn.layers[0][0].out_features,
    )
    dd = neck.decoder_embed.out_features
    cfg = dict(
        type='MAE',
        backbone=dict(
            type='MAEViT',
            arch=arch,
            img_size=bb.patch_resolution[0] * bb.patch_size,
            patch_size=bb.patch_size,
            mask_ratio=bb.mask_ratio,
        ),
        neck=dict(
            type='MAEPretrainDecoder',
            num_patches=neck.num_patches,
            patch_size=bb.patch_size,
            embed_dim=bb.embed_dims,
            decoder_embed_dim=dd,
            decoder_depth=len(neck.decoder_blocks),
            decoder_num_heads=neck.decoder_blocks[0].attn.num_heads,
            mlp_ratio=neck.decoder_blocks[0].ffn.layers[0][0].out_features // dd,
        ),
        head=dict(
            type='MAEPretrainHead',
            norm_pix=head.norm_pix,
            patch_size=head.patch_size,
            loss=dict(type='PixelReconstructionLoss', criterion=head.loss_module.criterion),
        ),
    )
    return _build_in_mmpretrain(cfg, model)


def build_mmpretrain_mixmim(model: nn.Module) -> nn.Module:
    """The same MixMIM built from mmpretrain 1.2.0 (test-time reference only), with ``model``'s weights loaded strictly.

    mmpretrain's decoder LayerNorms use eps 1e-6 where mimlab follows the official 1e-5; the timing does not depend on
    it. Raises ``TypeError`` for other models.
    """
    if type(model).__name__ != 'MixMIM' or model.target_generator is not None:
        raise TypeError(f'expected a plain MixMIM, got {type(model).__name__}')
    bb, neck = model.backbone, model.neck
    dd = neck.decoder_embed.out_features
    cfg = dict(
        type='MixMIM',
        backbone=dict(
            type='MixMIMPretrainTransformer',
            arch=dict(embed_dims=bb.embed_dims, depths=bb.depths, num_heads=bb.num_heads),
            img_size=bb.patch_resolution[0] * bb.patch_size,
            patch_size=bb.patch_size,
            window_size=[layer.window_size for layer in bb.layers],
            mask_ratio=bb.mask_ratio,
        ),
        neck=dict(
            type='MixMIMPretrainDecoder',
            num_patches=neck.num_patches,
            encoder_stride=bb.out_strides[-1],  # the backbone contract's geometry, as MixMIM infers its decoder
            embed_dim=bb.out_channels[-1],
            decoder_embed_dim=dd,
            decoder_depth=len(neck.decoder_blocks),
            decoder_num_heads=neck.decoder_blocks[0].attn.num_heads,
            mlp_ratio=neck.decoder_blocks[0].ffn.layers[0][0].out_features // dd,
        ),
        head=dict(
            type='MixMIMPretrainHead',
            norm_pix=model.head.norm_pix,
            loss=dict(type='PixelReconstructionLoss', criterion=model.head.loss_module.criterion),
        ),
    )
    return _build_in_mmpretrain(cfg, model)


def build_mmpretrain_reference(model: nn.Module) -> nn.Module:
    """mmpretrain 1.2.0's build of the same algorithm (MAE or MixMIM) with ``model``'s weights."""
    builders = {'MAE': build_mmpretrain_mae, 'MixMIM': build_mmpretrain_mixmim}
    if type(model).__name__ not in builders:
        raise TypeError(f'--reference mmpretrain supports {sorted(builders)}, not {type(model).__name__}')
    return builders[type(model).__name__](model)


_MMPRETRAIN_PARAMWISE = dict(
    custom_keys={
        'ln': dict(decay_mult=0.0),
        'bias': dict(decay_mult=0.0),
        'pos_embed': dict(decay_mult=0.0),
        'mask_token': dict(decay_mult=0.0),
        'cls_token': dict(decay_mult=0.0),
    }
)


MMPRETRAIN = Reference(
    name='mmpretrain',
    label='mmpretrain 1.2.0',
    build=build_mmpretrain_reference,
    optim_wrapper=dict(constructor='DefaultOptimWrapperConstructor', paramwise_cfg=_MMPRETRAIN_PARAMWISE),
)


def mmpretrain_pipeline(scale: int = 224) -> list[dict]:
    """mmpretrain 1.2.0's MAE pretraining pipeline (``imagenet_bs512_mae.py``), scoped to mmpretrain."""
    return [
        dict(type='mmpretrain.LoadImageFromFile'),
        dict(
            type='mmpretrain.RandomResizedCrop',
            scale=scale,
            crop_ratio_range=(0.2, 1.0),
            backend='pillow',
            interpolation='bicubic',
        ),
        dict(type='mmpretrain.RandomFlip', prob=0.5),
        dict(type='mmpretrain.PackInputs'),
    ]
