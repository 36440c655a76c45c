"""openmixup A2MIM pretraining checkpoints -> mimlab's :class:`~mimlab.models.algorithms.a2mim.A2MIM` keys.

What differs between openmixup's layout and mimlab's (= mmpretrain 1.2.0's) for each backbone family:

- ResNet (openmixup ``MIMResNet``, the mmcls 0.x ``ResNet``): nothing. ``conv1``, ``bn1``, ``layer{s}.{b}.conv/bn*``,
  ``downsample.{0,1}``, ``mask_token`` (1, C, 1, 1) and ``mask_gamma`` (1, C, 1, 1) carry over unchanged.
- ConvNeXt (openmixup ``MIMConvNeXt``, mmcls ``ConvNeXt``): nothing. ``downsample_layers``, ``stages``, ``norm3``,
  ``mask_token``, ``mask_gamma`` carry over unchanged.
- ViT (openmixup ``SimMIMViT``, mmcls 0.x ``VisionTransformer``): norms are already ``layers.{i}.ln1/ln2`` and
  ``ln1`` (mmcv names a LayerNorm built with postfix 1 ``ln1``); LayerScale ``layers.{i}.gamma_1/gamma_2`` ->
  ``attn.gamma1.weight`` / ``ffn.gamma2.weight``; with ``use_window=True`` the qkv projection has no bias but separate
  ``q_bias`` / ``v_bias`` (k has none), which become ``attn.qkv.bias = [q_bias, 0, v_bias]`` (a key bias does not
  change attention: it adds the same amount to every logit of a query). Each block's BEiT-style
  ``relative_position_bias_table`` and ``relative_position_index`` carry over unchanged into mimlab's ViT with
  ``use_rel_pos_bias=True`` (the default of ``A2MIMViT``); ``drop_relative_position_bias=True`` drops them for a ViT
  without the bias (which then computes a different function until fine-tuned).
- Neck (``NonLinearMIMNeck`` with ``decoder_cfg=None``, as in every A2MIM recipe): ``neck.decoder_pred.0.*`` ->
  ``neck.decoder.0.*`` (mimlab's :class:`~mimlab.models.algorithms.simmim.SimMIMLinearDecoder`); openmixup's
  ``SimMIMNeck`` (its SimMIM checkpoints, the A2MIM table's baselines) already names it ``neck.decoder.0.*``.
- Head: A2MIM's and SimMIM's heads have no parameters.

Fine-tuned classifiers (openmixup's ``MixUpClassification``, :func:`classifier_from_openmixup`): the backbone as
above (the plain ``ResNet`` / ``ConvNeXt`` / ``MIMVisionTransformer`` have the same names, without mask token), the
ViT's ``fc_norm`` (LayerNorm of the averaged patch tokens, ``final_norm=False``) -> ``ln2``, and ``ClsMixupHead``'s
``head.fc.*`` -> ``head.fc.*`` (mimlab's ``LinearClsHead``).

Tensors are never changed except the concatenated ViT qkv bias.
"""

import re

import torch

from mimlab.utils.checkpoint import state_dict_of

from .convnext import _COMPILED as _CONVNEXT_PAIRS
from .resnet import _BACKBONE as _RESNET_KEY

_MASK_KEYS = ('mask_token', 'mask_gamma')
_VIT_KEEP = re.compile(
    r'^(cls_token|pos_embed|patch_embed\.projection\.(weight|bias)|'
    r'ln1\.(weight|bias)|'
    r'layers\.\d+\.(ln[12]\.(weight|bias)|attn\.(qkv|proj)\.(weight|bias)|ffn\.layers\.(0\.0|1)\.(weight|bias)))$'
)
_VIT_RENAMES = [
    (re.compile(r'^layers\.(\d+)\.gamma_1$'), r'layers.\1.attn.gamma1.weight'),
    (re.compile(r'^layers\.(\d+)\.gamma_2$'), r'layers.\1.ffn.gamma2.weight'),
]


def detect_a2mim_family(backbone: dict) -> str:
    """'resnet', 'convnext' or 'vit' from openmixup backbone keys (no ``backbone.`` prefix).

    Raises:
        KeyError: when no family matches, with a sample of the keys.
    """
    if 'conv1.weight' in backbone and 'layer1.0.conv1.weight' in backbone:
        return 'resnet'
    if 'downsample_layers.0.0.weight' in backbone:
        return 'convnext'
    if 'patch_embed.projection.weight' in backbone and any(k.startswith('layers.') for k in backbone):
        return 'vit'
    raise KeyError(f'not an openmixup A2MIM ResNet / ConvNeXt / ViT backbone; first keys: {sorted(backbone)[:8]}')


def _vit_backbone(backbone: dict, drop_relative_position_bias: bool) -> tuple[dict, list]:
    out, unknown = {}, []
    for key, value in backbone.items():
        if key in _MASK_KEYS or _VIT_KEEP.match(key):
            out[key] = value
            continue
        if re.match(r'^layers\.\d+\.attn\.[qv]_bias$', key):
            continue  # folded into qkv.bias below
        if re.match(r'^layers\.\d+\.attn\.relative_position_(bias_table|index)$', key):
            if not drop_relative_position_bias:  # A2MIMViT(use_rel_pos_bias=True) has the same table and index
                out[key] = value
            continue
        for pattern, repl in _VIT_RENAMES:
            if pattern.match(key):
                out[pattern.sub(repl, key)] = value
                break
        else:
            unknown.append(key)
    for key in backbone:
        m = re.match(r'^layers\.(\d+)\.attn\.q_bias$', key)
        if m:
            q, v = backbone[key], backbone[f'layers.{m.group(1)}.attn.v_bias']
            out[f'layers.{m.group(1)}.attn.qkv.bias'] = torch.cat([q, torch.zeros_like(q), v])  # k has no bias
    return out, unknown


def a2mim_from_openmixup(state: dict, drop_relative_position_bias: bool = False) -> dict:
    """mimlab ``A2MIM`` state dict (``backbone.*``, ``neck.decoder.0.*``) of an openmixup A2MIM checkpoint.

    Args:
        state: The loaded file: ``{'state_dict': ...}`` (mmcv), ``{'model': ...}`` or bare; full algorithm
            (``backbone.`` / ``neck.`` prefixes) or backbone only.
        drop_relative_position_bias: Drop ViT relative position bias tables instead of raising.

    Raises:
        KeyError: naming every key with no mimlab counterpart.
    """
    state = state_dict_of(state)
    if any(k.startswith('backbone.') for k in state):
        backbone = {k[len('backbone.') :]: v for k, v in state.items() if k.startswith('backbone.')}
        rest = {k: v for k, v in state.items() if not k.startswith('backbone.')}
    else:
        backbone, rest = dict(state), {}
    family = detect_a2mim_family(backbone)
    if family == 'resnet':
        unknown = [k for k in backbone if not (k in _MASK_KEYS or _RESNET_KEY.match(k))]
    elif family == 'convnext':
        known = [p for p in _CONVNEXT_PAIRS if not p[2].startswith('head.')]
        unknown = [k for k in backbone if not (k in _MASK_KEYS or re.match(r'^norm\d\.(weight|bias)$', k))]
        unknown = [k for k in unknown if not any(p[0].match(k) for p in known)]
    else:
        backbone, unknown = _vit_backbone(backbone, drop_relative_position_bias)
    out = {f'backbone.{k}': v for k, v in backbone.items()}
    for key, value in rest.items():
        m = re.match(r'^neck\.decoder(_pred)?\.0\.(weight|bias)$', key)
        if m:
            out[f'neck.decoder.0.{m.group(2)}'] = value
        else:
            unknown.append(key)
    if unknown:
        hint = ' (or pass drop_relative_position_bias=True)' if any('relative_position' in k for k in unknown) else ''
        raise KeyError(f'no mimlab A2MIM ({family}) counterpart for{hint}: {sorted(unknown)}')
    return out


def classifier_from_openmixup(state: dict, drop_relative_position_bias: bool = False) -> dict:
    """mimlab ``ImageClassifier`` state dict of an openmixup fine-tuned classification checkpoint (the A2MIM table's
    ``*_ft*.pth``): ``backbone.*`` as :func:`a2mim_from_openmixup` plus ``fc_norm`` -> ``ln2``, ``head.fc.*`` kept.

    Args:
        state: The loaded file (``{'state_dict': ...}``, ``{'model': ...}`` or bare) with ``backbone.`` and ``head.``
            prefixes.
        drop_relative_position_bias: Drop ViT relative position bias tables instead of raising.

    Raises:
        KeyError: naming every key with no mimlab counterpart, or when there is no ``head.fc.weight``.
    """
    state = state_dict_of(state)
    if 'head.fc.weight' not in state:
        raise KeyError(f'not an openmixup classifier (no head.fc.weight); first keys: {sorted(state)[:8]}')
    backbone, out, unknown = {}, {}, []
    for key, value in state.items():
        if key.startswith('backbone.fc_norm.'):
            out['backbone.ln2.' + key.rsplit('.', 1)[1]] = value
        elif key.startswith('backbone.'):
            backbone[key] = value
        elif re.match(r'^head\.fc\.(weight|bias)$', key):
            out[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f'no mimlab ImageClassifier counterpart for: {sorted(unknown)}')
    out.update(a2mim_from_openmixup(backbone, drop_relative_position_bias))
    return out


def a2mim_to_openmixup(state: dict) -> dict:
    """The inverse of :func:`a2mim_from_openmixup` for ResNet / ConvNeXt / ViT without relative position bias (tests
    and exports): mimlab keys -> openmixup keys."""
    state = state_dict_of(state)
    out = {}
    for key, value in state.items():
        if key.startswith('neck.decoder.0.'):
            out['neck.decoder_pred.0.' + key.rsplit('.', 1)[1]] = value
            continue
        if not key.startswith('backbone.'):
            raise KeyError(f'no openmixup A2MIM counterpart for {key}')
        name = key[len('backbone.') :]
        for pattern, repl in (
            (r'^layers\.(\d+)\.attn\.gamma1\.weight$', r'layers.\1.gamma_1'),
            (r'^layers\.(\d+)\.ffn\.gamma2\.weight$', r'layers.\1.gamma_2'),
        ):
            if re.match(pattern, name):
                name = re.sub(pattern, repl, name)
                break
        out['backbone.' + name] = value
    return out
