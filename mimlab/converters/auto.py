"""Backbone-family detection and the timm round trip for every backbone mimlab converts.

``to_timm`` takes any mimlab / mmpretrain / mmselfsup checkpoint (full algorithm or backbone-only, with or without
the ``state_dict`` / ``model`` wrapper), finds the backbone family from its keys and returns timm's layout;
``check_against_timm`` builds both models from the weights alone and compares their features.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mimlab.utils.checkpoint import state_dict_of

from .a2mim import a2mim_from_openmixup, classifier_from_openmixup
from .convnext import convnext_from_timm, convnext_to_timm, timm_convnext_model
from .mixmim import compare_round_trip, mixmim_from_official, mixmim_to_official
from .resnet import resnet_from_timm, resnet_to_timm, timm_resnet_model
from .swin import swin_from_official, swin_from_timm, swin_to_timm, timm_swin_kwargs
from .vit import mae_from_official, split_checkpoint, timm_vit_kwargs, vit_from_timm, vit_to_timm

# parameters that only pretraining uses; a backbone carried to timm leaves them behind
PRETRAIN_ONLY = ('mask_token', 'mask_gamma')


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


def _resnet_compare(backbone: dict, timm_state: dict) -> float:
    from mimlab.models.backbones.resnet import ResNet

    ref = timm_resnet_model(timm_state).eval()
    ref.load_state_dict(timm_state, strict=True)
    blocks = tuple(1 + max(int(k.split('.')[1]) for k in backbone if k.startswith(f'layer{s}.')) for s in range(1, 5))
    bottleneck = 'layer1.0.conv3.weight' in backbone
    depth = next(
        (
            d
            for d, (block, n) in ResNet.arch_settings.items()
            if tuple(n) == blocks and (block.expansion == 4) == bottleneck
        ),
        None,
    )
    if depth is None:
        raise KeyError(f'no ResNet depth has {blocks} {"bottleneck" if bottleneck else "basic"} blocks per stage')
    ours = ResNet(depth=depth, out_indices=(3,), stem_channels=64, base_channels=64).eval()
    ours.load_state_dict(backbone, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        return (ours(x)[-1] - ref.forward_features(x)).abs().max().item()


def _convnext_compare(backbone: dict, timm_state: dict) -> float:
    from mimlab.models.backbones.convnext import ConvNeXt

    ref = timm_convnext_model(timm_state).eval()
    ref.load_state_dict(timm_state, strict=True)
    stages = 1 + max(int(k.split('.')[1]) for k in backbone if k.startswith('stages.'))
    depths = [1 + max(int(k.split('.')[2]) for k in backbone if k.startswith(f'stages.{s}.')) for s in range(stages)]
    channels = [backbone[f'stages.{s}.0.depthwise_conv.weight'].shape[0] for s in range(stages)]
    ours = ConvNeXt(
        arch=dict(depths=depths, channels=channels),
        stem_patch_size=backbone['downsample_layers.0.0.weight'].shape[-1],
        layer_scale_init_value=1e-6 if 'stages.0.0.gamma' in backbone else 0.0,
        use_grn='stages.0.0.grn.gamma' in backbone,
        linear_pw_conv=backbone['stages.0.0.pointwise_conv1.weight'].ndim == 2,
        out_indices=(stages - 1,),
        gap_before_final_norm=True,
    ).eval()
    ours.load_state_dict(backbone, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        theirs = ref.forward_head(ref.forward_features(x), pre_logits=True)
        return (ours(x)[-1] - theirs).abs().max().item()


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
    'resnet': Family(
        'resnet',
        detect=lambda k: 'conv1.weight' in k and 'layer1.0.conv1.weight' in k,
        detect_timm=lambda k: 'conv1.weight' in k and 'layer1.0.conv1.weight' in k,
        to_timm=resnet_to_timm,
        from_timm=resnet_from_timm,
        compare=_resnet_compare,
    ),
    'convnext': Family(
        'convnext',
        detect=lambda k: 'downsample_layers.0.0.weight' in k,
        detect_timm=lambda k: 'stem.0.weight' in k and 'stages.0.blocks.0.conv_dw.weight' in k,
        to_timm=convnext_to_timm,
        from_timm=convnext_from_timm,
        compare=_convnext_compare,
    ),
}


def _mixmim_to_official(backbone: dict, head: dict | None = None) -> dict:
    return mixmim_to_official({**{'backbone.' + k: v for k, v in backbone.items()}, **(head or {})})


# timm has no MixMIM model: its "timm" layout is the official code's (built from timm blocks), and the check is a
# lossless round trip through that layout
FAMILIES['mixmim'] = Family(
    'mixmim',
    detect=lambda k: 'absolute_pos_embed' in k and any(re.match(r'layers\.\d+\.blocks\.\d+\.ln1\.', x) for x in k),
    detect_timm=lambda k: (
        'absolute_pos_embed' in k
        and any(re.match(r'layers\.\d+\.blocks\.\d+\.mlp\.fc1\.', x) for x in k)
        and not any(x.endswith('attn_mask') for x in k)
    ),
    to_timm=_mixmim_to_official,
    from_timm=mixmim_from_official,
    compare=compare_round_trip,
)


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
    state = state_dict_of(state)
    family = family or detect_family(state, timm=True)
    return family, FAMILIES[family].from_timm(state)


def check_against_timm(family: str, backbone: dict, timm_state: dict) -> float:
    """Build timm's and mimlab's models from the weights alone (strict loads) and return the max feature gap."""
    return FAMILIES[family].compare(backbone, timm_state)


def detect_source(state: dict) -> str:
    """Which published layout a foreign checkpoint has: 'official-simmim', 'official-swin', 'official-mae',
    'official-mixmim', 'openmixup-a2mim', 'openmixup-cls' or 'timm'."""
    state = state_dict_of(state)
    keys = set(state)
    if 'neck.decoder_pred.0.weight' in keys:  # openmixup's NonLinearMIMNeck
        return 'openmixup-a2mim'
    if 'head.fc.weight' in keys and any(
        re.match(r'backbone\.(fc_norm\.|layers\.\d+\.(gamma_1|attn\.q_bias))', k) for k in keys
    ):
        return 'openmixup-cls'  # an openmixup ViT classifier (a ResNet / ConvNeXt one has mimlab's keys already)
    if any(k.startswith('encoder.layers.') for k in keys) and 'decoder.0.weight' in keys:
        return 'official-simmim'
    if FAMILIES['mixmim'].detect_timm(keys):  # Swin-like, with a fixed absolute position table and no shifts
        return 'official-mixmim'
    if 'layers.0.downsample.reduction.weight' in keys:  # merging at the end of a stage: the original Swin code
        return 'official-swin'
    if 'decoder_embed.weight' in keys or 'decoder_pred.weight' in keys:
        return 'official-mae'
    return 'timm'


def import_checkpoint(state: dict, source: str = 'auto') -> tuple[str, dict]:
    """(source, mimlab state dict) of an official MAE / Swin / SimMIM or timm checkpoint.

    Args:
        state: The loaded file (``{'model': ...}``, ``{'state_dict': ...}`` or bare).
        source: 'auto' (from the keys), 'timm', 'official-mae', 'official-swin', 'official-simmim',
            'official-mixmim', 'openmixup-a2mim' (A2MIM and SimMIM pretraining) or 'openmixup-cls' (openmixup's
            fine-tuned classifiers).
    """
    source = detect_source(state) if source == 'auto' else source
    inner = state_dict_of(state)
    if source == 'official-mae':
        return source, mae_from_official(inner)
    if source in ('official-swin', 'official-simmim'):
        return source, swin_from_official(inner)
    if source == 'official-mixmim':
        return source, mixmim_from_official(inner)
    if source == 'timm':
        return source, from_timm(inner)[1]
    if source == 'openmixup-a2mim':
        return source, a2mim_from_openmixup(inner)
    if source == 'openmixup-cls':
        return source, classifier_from_openmixup(inner)
    raise ValueError(
        f"unknown source {source!r}: use 'auto', 'timm', 'official-mae', 'official-swin', 'official-simmim', "
        "'official-mixmim', 'openmixup-a2mim', 'openmixup-cls'"
    )
