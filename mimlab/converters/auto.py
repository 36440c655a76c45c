"""Backbone-family detection and the timm round trip for every backbone mimlab converts.

``to_timm`` takes any mimlab / mmpretrain / mmselfsup checkpoint (full algorithm or backbone-only, with or without
the ``state_dict`` / ``model`` wrapper), finds the backbone family from its keys and returns timm's layout;
``check_against_timm`` builds both models from the weights alone and compares their features.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .swin import swin_from_official, swin_from_timm, swin_to_timm, timm_swin_kwargs
from .vit import mae_from_official, split_checkpoint, timm_vit_kwargs, vit_from_timm, vit_to_timm

# parameters that only pretraining uses; a backbone carried to timm leaves them behind
PRETRAIN_ONLY = ('mask_token',)


@dataclass(frozen=True)
class Family:
    name: str
    detect: Callable[[set], bool]  # on the backbone keys (mimlab layout)
    detect_timm: Callable[[set], bool]  # on timm keys
    to_timm: Callable[..., dict]
    from_timm: Callable[[dict], dict]
    compare: Callable[[dict, dict], float]  # (mimlab backbone, timm state) -> max |feature difference|


def _vit_compare(backbone: dict, timm_state: dict) -> float:
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    from mimlab.models.backbones.vit import VisionTransformer

    kw = timm_vit_kwargs(timm_state)
    ref = TimmViT(**kw).eval()
    ref.load_state_dict(timm_state, strict=True)
    arch = dict(
        embed_dims=kw['embed_dim'],
        num_layers=kw['depth'],
        num_heads=kw['num_heads'],
        feedforward_channels=int(kw['mlp_ratio'] * kw['embed_dim']),
    )
    ours = VisionTransformer(
        arch=arch,
        img_size=kw['img_size'],
        patch_size=kw['patch_size'],
        out_type='avg_featmap' if kw['fc_norm'] else 'raw',  # the avg-pool variant has its fc_norm (ln2)
        final_norm=kw['final_norm'],
        pre_norm=kw['pre_norm'],
        layer_scale_init_value=1.0 if kw['init_values'] else 0.0,
    ).eval()
    ours.load_state_dict(backbone, strict=True)
    ours.out_type = 'raw'
    x = torch.randn(2, 3, kw['img_size'], kw['img_size'])
    with torch.no_grad():
        return (ours(x)[0] - ref.forward_features(x)).abs().max().item()


def _swin_compare(backbone: dict, timm_state: dict) -> float:
    from timm.models.swin_transformer import SwinTransformer as TimmSwin

    from mimlab.models.backbones.swin import SwinTransformer

    kw = timm_swin_kwargs(timm_state)
    ref = TimmSwin(**kw).eval()
    ref.load_state_dict(timm_state, strict=True)
    arch = dict(embed_dims=kw['embed_dim'], depths=list(kw['depths']), num_heads=list(kw['num_heads']))
    ours = SwinTransformer(
        arch=arch, img_size=kw['img_size'], patch_size=kw['patch_size'], window_size=kw['window_size']
    ).eval()
    ours.load_state_dict(backbone, strict=True)
    x = torch.randn(2, 3, kw['img_size'], kw['img_size'])
    with torch.no_grad():
        return (ours(x)[-1].permute(0, 2, 3, 1) - ref.forward_features(x)).abs().max().item()


FAMILIES: dict[str, Family] = {
    'vit': Family(
        'vit',
        detect=lambda k: (
            'patch_embed.projection.weight' in k and any(re.match(r'layers\.\d+\.attn\.qkv', x) for x in k)
        ),
        detect_timm=lambda k: 'pos_embed' in k and any(x.startswith('blocks.') for x in k),
        to_timm=vit_to_timm,
        from_timm=vit_from_timm,
        compare=_vit_compare,
    ),
    'swin': Family(
        'swin',
        detect=lambda k: any('.attn.w_msa.' in x for x in k),
        detect_timm=lambda k: any(
            re.match(r'layers\.\d+\.blocks\.\d+\.attn\.relative_position_bias_table', x) for x in k
        ),
        to_timm=swin_to_timm,
        from_timm=swin_from_timm,
        compare=_swin_compare,
    ),
}


def detect_family(keys, timm: bool = False) -> str:
    """Backbone family ('vit', 'swin', ...) of a mimlab (or, with ``timm=True``, timm) state dict's keys.

    Raises:
        KeyError: when no family matches, with a sample of the keys.
    """
    keys = set(keys)
    for family in FAMILIES.values():
        if (family.detect_timm if timm else family.detect)(keys):
            return family.name
    layout = 'timm' if timm else 'mimlab/mmpretrain'
    raise KeyError(
        f'cannot tell the backbone family of these {layout} keys (known: {sorted(FAMILIES)}); first keys: '
        f'{sorted(keys)[:8]}'
    )


def to_timm(state: dict) -> tuple[str, dict, dict]:
    """(family, timm state dict, mimlab backbone state dict) of any mimlab/mmpretrain/mmselfsup checkpoint.

    Pretraining-only parameters (``mask_token``) are left behind; necks, decoders and target generators are not
    part of the backbone and are dropped with them. Any other key without a timm counterpart raises ``KeyError``.
    """
    backbone, head = split_checkpoint(state)
    backbone = {k: v for k, v in backbone.items() if k not in PRETRAIN_ONLY}
    family = detect_family(backbone)
    return family, FAMILIES[family].to_timm(backbone, head), backbone


def from_timm(state: dict, family: str | None = None) -> tuple[str, dict]:
    """(family, mimlab state dict with ``backbone.`` / ``head.fc.`` prefixes) of a timm state dict."""
    state = state.get('model', state.get('state_dict', state))
    family = family or detect_family(state, timm=True)
    return family, FAMILIES[family].from_timm(state)


def check_against_timm(family: str, backbone: dict, timm_state: dict) -> float:
    """Build timm's and mimlab's models from the weights alone (strict loads) and return the max feature gap."""
    return FAMILIES[family].compare(backbone, timm_state)


def detect_source(state: dict) -> str:
    """Which published layout a foreign checkpoint has: 'official-simmim', 'official-swin', 'official-mae' or 'timm'."""
    state = state.get('model', state.get('state_dict', state))
    keys = set(state)
    if any(k.startswith('encoder.layers.') for k in keys) and 'decoder.0.weight' in keys:
        return 'official-simmim'
    if 'layers.0.downsample.reduction.weight' in keys:  # merging at the end of a stage: the original Swin code
        return 'official-swin'
    if 'decoder_embed.weight' in keys or 'decoder_pred.weight' in keys:
        return 'official-mae'
    return 'timm'


def import_checkpoint(state: dict, source: str = 'auto') -> tuple[str, dict]:
    """(source, mimlab state dict) of an official MAE / Swin / SimMIM or timm checkpoint.

    Args:
        state: The loaded file (``{'model': ...}``, ``{'state_dict': ...}`` or bare).
        source: 'auto' (from the keys), 'timm', 'official-mae', 'official-swin' or 'official-simmim'.
    """
    source = detect_source(state) if source == 'auto' else source
    inner = state.get('model', state.get('state_dict', state))
    if source == 'official-mae':
        return source, mae_from_official(inner)
    if source in ('official-swin', 'official-simmim'):
        return source, swin_from_official(inner)
    if source == 'timm':
        return source, from_timm(inner)[1]
    raise ValueError(
        f"unknown source {source!r}: use 'auto', 'timm', 'official-mae', 'official-swin', 'official-simmim'"
    )
