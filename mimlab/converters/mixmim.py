"""MixMIM state-dict mapping between mimlab (= mmpretrain ``MixMIM`` / ``MixMIMTransformer``) and the official code.

- **mimlab / mmpretrain**: ``backbone.patch_embed.projection``, ``backbone.layers.{s}.blocks.{b}.ln1/ln2``,
  ``ffn.layers.0.0`` / ``ffn.layers.1``, patch merging ``layers.{s}.downsample`` with its 4C features in
  ``nn.Unfold`` order; the decoder under ``neck.`` (``neck.mask_token``, ``neck.decoder_blocks.{k}.ln1/attn/ln2/ffn``,
  final norm ``neck.ln1``); a classifier's head ``head.fc``.
- **official** (Sense-X/MixMIM ``models_mixmim.py`` / ``models_mixmim_ft.py``, timm building blocks): one flat dict,
  ``patch_embed.proj``, ``layers.{s}.blocks.{b}.norm1/norm2``, ``mlp.fc1`` / ``mlp.fc2``, patch merging at the same
  place but with timm's offset-major 4C order; the decoder at the top level (``mask_token``, ``decoder_embed``,
  ``decoder_blocks.{k}.norm1/attn/norm2/mlp``, ``decoder_norm``, ``decoder_pred``, ``decoder_pos_embed``); the
  fine-tuned classifier's ``head``. Checkpoints wrap it in ``{'model': ...}``.

mmpretrain's ``mixmim_to_mmpretrain.py`` converts fine-tuned checkpoints only (decoder keys raise); this module also
converts the pretraining checkpoints, decoder included, so an official MixMIM pretraining run can be continued or
evaluated here. timm has no MixMIM model: the "timm" export of a MixMIM encoder is the official layout.
"""

import re

import torch

from .swin import _merge_from_timm, _merge_to_timm

_BLOCK = [('ln1.', 'norm1.'), ('ln2.', 'norm2.'), ('ffn.layers.0.0.', 'mlp.fc1.'), ('ffn.layers.1.', 'mlp.fc2.')]
_DECODER_TOP = [('ln1.', 'decoder_norm.')]


def _swap(key: str, pairs, src: int) -> str:
    for pair in pairs:
        if key.startswith(pair[src]):
            return pair[1 - src] + key[len(pair[src]) :]
    return key


def _block_key(key: str, src: int) -> str:
    """Rename inside ``...blocks.{b}.``: ln1/ln2/ffn (mimlab, src=0) <-> norm1/norm2/mlp (official, src=1)."""
    m = re.match(r'^(.*blocks\.\d+\.)(.*)$', key)
    return m.group(1) + _swap(m.group(2), _BLOCK, src) if m else key


def mixmim_to_official(state: dict) -> dict:
    """mimlab MixMIM state dict (``backbone.*`` [+ ``neck.*``] [+ ``head.fc.*``], or a bare backbone) -> official.

    Raises:
        KeyError: for keys of neither the backbone, the MixMIM decoder nor a linear head.
    """
    prefixed = any(k.startswith('backbone.') for k in state)
    out, unknown = {}, []
    for key, value in state.items():
        if prefixed and key.startswith('backbone.'):
            key = key[len('backbone.') :]
        elif prefixed and key.startswith('neck.'):
            key = key[len('neck.') :]
            if key.startswith('decoder_blocks.'):
                out[_block_key(key, 0)] = value
            elif key.startswith('ln1.'):
                out[_swap(key, _DECODER_TOP, 0)] = value
            elif key.split('.')[0] in ('mask_token', 'decoder_pos_embed', 'decoder_embed', 'decoder_pred'):
                out[key] = value
            else:
                unknown.append('neck.' + key)
            continue
        elif key.startswith('head.fc.'):
            out['head.' + key[len('head.fc.') :]] = value
            continue
        elif prefixed:
            unknown.append(key)
            continue
        if key.startswith('patch_embed.projection.'):
            out['patch_embed.proj.' + key[len('patch_embed.projection.') :]] = value
        elif key.startswith('patch_embed.norm.'):
            out[key] = value
        elif key.startswith('layers.') and '.downsample.' in key:
            out[key] = _merge_to_timm(value)  # reduction (2C, 4C) / norm (4C,): the 4C axis is the last one
        elif key.startswith('layers.'):
            out[_block_key(key, 0)] = value
        elif key.split('.')[0] in ('absolute_pos_embed', 'norm'):
            out[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f'no official MixMIM counterpart for: {sorted(unknown)}')
    return out


def mixmim_from_official(state: dict) -> dict:
    """Official MixMIM checkpoint (``{'model': ...}`` or bare; pretraining or fine-tuned) -> mimlab keys.

    A pretraining checkpoint gives a full ``MixMIM`` state dict (``backbone.*`` + ``neck.*``) that loads strictly;
    a fine-tuned one gives ``backbone.*`` + ``head.fc.*`` for an ``ImageClassifier`` with ``LinearClsHead``.

    Raises:
        KeyError: for keys that are not part of the official models.
    """
    state = state.get('model', state)
    out, unknown = {}, []
    for key, value in state.items():
        if key.startswith('decoder_blocks.'):
            out['neck.' + _block_key(key, 1)] = value
        elif key.startswith('decoder_norm.'):
            out['neck.' + _swap(key, _DECODER_TOP, 1)] = value
        elif key.split('.')[0] in ('mask_token', 'decoder_pos_embed', 'decoder_embed', 'decoder_pred'):
            out['neck.' + key] = value
        elif key.startswith('head.'):
            out['head.fc.' + key[len('head.') :]] = value
        elif key.startswith('patch_embed.proj.'):
            out['backbone.patch_embed.projection.' + key[len('patch_embed.proj.') :]] = value
        elif key.startswith('patch_embed.norm.'):
            out['backbone.' + key] = value
        elif key.startswith('layers.') and '.downsample.' in key:
            out['backbone.' + key] = _merge_from_timm(value)
        elif key.startswith('layers.'):
            out['backbone.' + _block_key(key, 1)] = value
        elif key.split('.')[0] in ('absolute_pos_embed', 'norm'):
            out['backbone.' + key] = value
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f'not an official MixMIM checkpoint; unknown keys: {sorted(unknown)[:10]}')
    return out


def mixmim_kwargs(backbone: dict) -> dict:
    """``MixMIMTransformer`` arguments (arch, img_size) that rebuild the encoder of a mimlab backbone state dict."""
    embed = backbone['patch_embed.projection.weight'].shape[0]
    depths, heads = [], []
    for s in range(4):
        blocks = {int(m.group(1)) for k in backbone if (m := re.match(rf'layers\.{s}\.blocks\.(\d+)\.', k))}
        if not blocks:
            break
        depths.append(max(blocks) + 1)
        heads.append(backbone[f'layers.{s}.blocks.0.attn.relative_position_bias_table'].shape[1])
    side = (
        int(round(backbone['absolute_pos_embed'].shape[1] ** 0.5)) * backbone['patch_embed.projection.weight'].shape[-1]
    )
    windows = []
    for s in range(len(depths)):
        n = backbone[f'layers.{s}.blocks.0.attn.relative_position_bias_table'].shape[0]
        windows.append((int(round(n**0.5)) + 1) // 2)
    return dict(arch=dict(embed_dims=embed, depths=depths, num_heads=heads), img_size=side, window_size=windows)


def compare_round_trip(backbone: dict, official: dict) -> float:
    """Max feature gap between the encoder built from ``backbone`` and from ``official`` converted back.

    timm has no MixMIM model to load the export into; this checks that the export is lossless for mimlab's model.
    """
    from mimlab.models.backbones.mixmim import MixMIMTransformer

    kwargs = mixmim_kwargs(backbone)
    back = {k[len('backbone.') :]: v for k, v in mixmim_from_official(official).items() if k.startswith('backbone.')}
    a, b = MixMIMTransformer(**kwargs).eval(), MixMIMTransformer(**kwargs).eval()
    a.load_state_dict(backbone, strict=True)
    b.load_state_dict(back, strict=True)
    x = torch.randn(2, 3, kwargs['img_size'], kwargs['img_size'])
    with torch.no_grad():
        return (a(x)[0] - b(x)[0]).abs().max().item()
