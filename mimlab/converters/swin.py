"""Swin state-dict mapping between mimlab (= mmpretrain ``SwinTransformer``), timm and the official Swin/SimMIM code.

Three layouts of the same weights:

- **mimlab / mmpretrain**: ``stages.{s}.blocks.{b}.attn.w_msa.*``, ``ffn.layers.0.0`` / ``ffn.layers.1``, patch
  merging at the *end* of stage ``s`` (``stages.{s}.downsample``) with its 4C features in ``nn.Unfold`` order
  (channel-major, then the 2x2 offsets (0,0), (0,1), (1,0), (1,1)), final norm ``norm3``, persistent
  ``relative_position_index`` buffers.
- **timm** (>= 0.9): ``layers.{s}.blocks.{b}.attn.*``, ``mlp.fc1`` / ``mlp.fc2``, patch merging at the *start* of stage
  ``s + 1`` (``layers.{s+1}.downsample``) with offset-major features ((0,0), (1,0), (0,1), (1,1), each C wide), final
  ``norm``, ``head.fc``; index and attention-mask buffers are not saved.
- **official** (microsoft/Swin-Transformer, microsoft/SimMIM): timm's names and feature order, but merging at the end
  of stage ``s`` (``layers.{s}.downsample``), ``head`` instead of ``head.fc``, and the index / ``attn_mask`` buffers
  saved. SimMIM pretraining checkpoints prefix the encoder with ``encoder.`` and add ``encoder.mask_token`` and the
  1x1-conv decoder ``decoder.0``.

The only tensor change is the reordering of the patch-merging ``norm`` and ``reduction`` along the 4C axis.
"""

import re

import torch

_BLOCK = [  # (mimlab, timm) inside stages.{s}.blocks.{b}. / layers.{s}.blocks.{b}.
    ('norm1.', 'norm1.'),
    ('attn.w_msa.qkv.', 'attn.qkv.'),
    ('attn.w_msa.proj.', 'attn.proj.'),
    ('attn.w_msa.relative_position_bias_table', 'attn.relative_position_bias_table'),
    ('norm2.', 'norm2.'),
    ('ffn.layers.0.0.', 'mlp.fc1.'),
    ('ffn.layers.1.', 'mlp.fc2.'),
]
_TOP = [('patch_embed.projection.', 'patch_embed.proj.'), ('patch_embed.norm.', 'patch_embed.norm.')]


def _merge_to_timm(t: torch.Tensor) -> torch.Tensor:
    """Patch-merging tensor, last axis 4C: unfold order (c, dh, dw) -> offset-major (dw, dh, c)."""
    c = t.shape[-1] // 4
    return t.reshape(*t.shape[:-1], c, 2, 2).movedim(-3, -1).transpose(-3, -2).reshape(t.shape)


def _merge_from_timm(t: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_merge_to_timm`: offset-major (dw, dh, c) -> unfold order (c, dh, dw)."""
    c = t.shape[-1] // 4
    return t.reshape(*t.shape[:-1], 2, 2, c).transpose(-3, -2).movedim(-1, -3).reshape(t.shape)


def _last_norm(keys) -> str | None:
    """Name of the final-stage norm (``norm{n-1}``) of a mimlab Swin state dict, from its stage count."""
    stages = {int(m.group(1)) for k in keys if (m := re.match(r'stages\.(\d+)\.', k))}
    return f'norm{max(stages)}' if stages else None


def swin_to_timm(backbone: dict, head: dict | None = None) -> dict:
    """mimlab/mmpretrain Swin backbone keys (no ``backbone.`` prefix) [+ ``head.fc.*``] -> timm keys.

    ``relative_position_index`` buffers are dropped (timm rebuilds them). Only the last stage's norm has a timm
    counterpart (``norm``).

    Raises:
        KeyError: naming every key that has no timm counterpart (e.g. ``absolute_pos_embed``, ``mask_token``, the
            norms of other out_indices).
    """
    out, unknown = {}, []
    last_norm = _last_norm(backbone)
    for key, value in backbone.items():
        if m := re.match(r'^stages\.(\d+)\.blocks\.(\d+)\.(.*)$', key):
            s, b, rest = m.groups()
            if rest.endswith('relative_position_index'):
                continue
            new = next((t + rest[len(a) :] for a, t in _BLOCK if rest.startswith(a)), None)
            (unknown.append(key) if new is None else out.__setitem__(f'layers.{s}.blocks.{b}.{new}', value))
        elif m := re.match(r'^stages\.(\d+)\.downsample\.(norm|reduction)\.(weight|bias)$', key):
            s, part, kind = m.groups()
            out[f'layers.{int(s) + 1}.downsample.{part}.{kind}'] = _merge_to_timm(value)
        elif last_norm and key.startswith(last_norm + '.'):
            out['norm.' + key[len(last_norm) + 1 :]] = value
        elif new := next((t + key[len(a) :] for a, t in _TOP if key.startswith(a)), None):
            out[new] = value
        else:
            unknown.append(key)
    for key, value in (head or {}).items():
        if key.startswith('head.fc.'):
            out[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f'no timm Swin counterpart for: {sorted(unknown)}')
    return out


def swin_from_timm(state: dict, num_stages: int | None = None) -> dict:
    """timm Swin keys -> mimlab keys with ``backbone.`` / ``head.fc.`` prefixes.

    The ``relative_position_index`` buffers are left out: mimlab's Swin rebuilds them on load (strict loading works).

    Raises:
        KeyError: naming every key that has no mimlab counterpart.
    """
    if num_stages is None:
        num_stages = 1 + max(int(m.group(1)) for k in state if (m := re.match(r'layers\.(\d+)\.', k)))
    out, unknown = {}, []
    for key, value in state.items():
        if key.endswith(('relative_position_index', 'attn_mask')):
            continue
        if m := re.match(r'^layers\.(\d+)\.blocks\.(\d+)\.(.*)$', key):
            s, b, rest = m.groups()
            new = next((a + rest[len(t) :] for a, t in _BLOCK if rest.startswith(t)), None)
            (unknown.append(key) if new is None else out.__setitem__(f'backbone.stages.{s}.blocks.{b}.{new}', value))
        elif m := re.match(r'^layers\.(\d+)\.downsample\.(norm|reduction)\.(weight|bias)$', key):
            s, part, kind = m.groups()
            out[f'backbone.stages.{int(s) - 1}.downsample.{part}.{kind}'] = _merge_from_timm(value)
        elif key.startswith('norm.'):
            out[f'backbone.norm{num_stages - 1}.' + key[len('norm.') :]] = value
        elif key.startswith('head.fc.'):
            out[key] = value
        elif new := next((a + key[len(t) :] for a, t in _TOP if key.startswith(t)), None):
            out['backbone.' + new] = value
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f'no mimlab Swin counterpart for: {sorted(unknown)}')
    return out


def swin_from_official(state: dict) -> dict:
    """Official Swin / SimMIM checkpoint (``{'model': ...}`` or bare) -> mimlab keys.

    A SimMIM pretraining checkpoint (``encoder.*``, ``decoder.0.*``) gives a full mimlab ``SimMIM`` state dict
    (``backbone.mask_token``, ``neck.decoder.0.*``); a fine-tuned one gives ``backbone.*`` + ``head.fc.*``.
    """
    state = state.get('model', state)
    encoder_prefix = 'encoder.' if any(k.startswith('encoder.') for k in state) else ''
    timm_state, extra = {}, {}
    for key, value in state.items():
        if key.startswith('decoder.'):
            extra['neck.' + key] = value
            continue
        key = key[len(encoder_prefix) :] if key.startswith(encoder_prefix) else key
        if key == 'mask_token':
            extra['backbone.mask_token'] = value
            continue
        key = re.sub(r'^layers\.(\d+)\.downsample', lambda m: f'layers.{int(m.group(1)) + 1}.downsample', key)
        if key.startswith('head.'):
            key = 'head.fc.' + key[len('head.') :]
        timm_state[key] = value
    return {**swin_from_timm(timm_state), **extra}


def timm_swin_kwargs(timm_state: dict, img_size: int | None = None) -> dict:
    """Constructor arguments of timm's ``SwinTransformer`` for a timm-layout state dict.

    Width, depths, window (from the bias table) and head size come from the tensors; head counts from the bias
    tables' last axis. ``img_size`` defaults to 32 x window (224 for window 7, 192 for SimMIM's window 6).
    """
    stages = 1 + max(int(k.split('.')[1]) for k in timm_state if k.startswith('layers.'))
    depths = [
        1 + max(int(k.split('.')[3]) for k in timm_state if k.startswith(f'layers.{s}.blocks.')) for s in range(stages)
    ]
    heads = [timm_state[f'layers.{s}.blocks.0.attn.relative_position_bias_table'].shape[1] for s in range(stages)]
    table = timm_state['layers.0.blocks.0.attn.relative_position_bias_table'].shape[0]
    window = (int(round(table**0.5)) + 1) // 2
    embed_dim = timm_state['patch_embed.proj.weight'].shape[0]
    return dict(
        img_size=img_size or 32 * window,
        patch_size=timm_state['patch_embed.proj.weight'].shape[-1],
        embed_dim=embed_dim,
        depths=tuple(depths),
        num_heads=tuple(heads),
        window_size=window,
        num_classes=timm_state['head.fc.weight'].shape[0] if 'head.fc.weight' in timm_state else 0,
    )
