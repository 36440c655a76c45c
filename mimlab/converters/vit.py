"""ViT state-dict key mapping between mimlab (= mmpretrain ``VisionTransformer``) and timm ``VisionTransformer``.

Both directions are pure renames (no tensor changes): fused qkv, the same patch-embedding conv and position table
with the cls row, LayerScale vectors.
"""

import re

# (mimlab pattern, timm pattern); {i} is a block index
_BLOCK = [
    ('layers.{i}.ln1.', 'blocks.{i}.norm1.'),
    ('layers.{i}.attn.qkv.', 'blocks.{i}.attn.qkv.'),
    ('layers.{i}.attn.proj.', 'blocks.{i}.attn.proj.'),
    ('layers.{i}.attn.gamma1.weight', 'blocks.{i}.ls1.gamma'),
    ('layers.{i}.ln2.', 'blocks.{i}.norm2.'),
    ('layers.{i}.ffn.layers.0.0.', 'blocks.{i}.mlp.fc1.'),
    ('layers.{i}.ffn.layers.1.', 'blocks.{i}.mlp.fc2.'),
    ('layers.{i}.ffn.gamma2.weight', 'blocks.{i}.ls2.gamma'),
]
_TOP = [
    ('cls_token', 'cls_token'),
    ('pos_embed', 'pos_embed'),
    ('patch_embed.projection.', 'patch_embed.proj.'),
    ('pre_norm.', 'norm_pre.'),
    ('ln1.', 'norm.'),  # final norm
    ('ln2.', 'fc_norm.'),  # norm of the averaged patch tokens (out_type='avg_featmap')
]
_HEAD = [('head.fc.', 'head.'), ('head.layers.head.', 'head.')]


def _rename(key: str, pairs, src: int) -> str | None:
    dst = 1 - src
    m = re.match(r'^(layers|blocks)\.(\d+)\.(.*)$', key)
    if m:
        i = m.group(2)
        for pair in _BLOCK:
            a, b = pair[src].format(i=i), pair[dst].format(i=i)
            if key.startswith(a):
                return b + key[len(a) :]
        return None
    for pair in pairs:
        if key == pair[src] or (pair[src].endswith('.') and key.startswith(pair[src])):
            return pair[dst] + key[len(pair[src]) :]
    return None


def vit_to_timm(backbone: dict, head: dict | None = None) -> dict:
    """mimlab/mmpretrain ViT backbone keys (no ``backbone.`` prefix) [+ head keys with ``head.``] -> timm keys.

    Raises:
        KeyError: naming every key that has no timm counterpart.
    """
    out, unknown = {}, []
    for key, value in backbone.items():
        new = _rename(key, _TOP, src=0)
        (unknown.append(key) if new is None else out.__setitem__(new, value))
    for key, value in (head or {}).items():
        new = _rename(key, _HEAD, src=0)
        (unknown.append(key) if new is None else out.__setitem__(new, value))
    if unknown:
        raise KeyError(f'no timm ViT counterpart for: {sorted(unknown)}')
    return out


def vit_from_timm(state: dict, head_type: str = 'LinearClsHead') -> dict:
    """timm ViT keys -> mimlab keys with ``backbone.`` / ``head.`` prefixes (``head.fc`` or ``head.layers.head``).

    Raises:
        KeyError: naming every key that has no mimlab counterpart.
    """
    head_prefix = 'head.fc.' if head_type == 'LinearClsHead' else 'head.layers.head.'
    out, unknown = {}, []
    for key, value in state.items():
        if key.startswith('head.'):
            out[head_prefix + key[len('head.') :]] = value
            continue
        new = _rename(key, _TOP, src=1)
        (unknown.append(key) if new is None else out.__setitem__('backbone.' + new, value))
    if unknown:
        raise KeyError(f'no mimlab ViT counterpart for: {sorted(unknown)}')
    return out


_MAE_DECODER = [  # (official MAE, mimlab MAE neck) outside the per-block names
    ('mask_token', 'neck.mask_token'),
    ('decoder_pos_embed', 'neck.decoder_pos_embed'),
    ('decoder_embed.', 'neck.decoder_embed.'),
    ('decoder_norm.', 'neck.ln1.'),
    ('decoder_pred.', 'neck.decoder_pred.'),
]


def mae_from_official(state: dict) -> dict:
    """Official MAE checkpoint (facebookresearch/mae, ``{'model': ...}`` or bare) -> mimlab keys.

    The encoder (timm names) becomes ``backbone.*`` (+ ``head.fc.*`` of fine-tuned models, whose ``fc_norm`` becomes
    ``backbone.ln2``); a checkpoint with the decoder (``mask_token``, ``decoder_*``, as the visualisation releases)
    also gives the ``neck.*`` of mimlab's ``MAE``. The released pretraining files hold the encoder only.

    Raises:
        KeyError: naming every key that has no mimlab counterpart.
    """
    state = state.get('model', state)
    encoder, out, unknown = {}, {}, []
    for key, value in state.items():
        if key.startswith('decoder_blocks.'):  # timm block names, as the encoder's
            new = _rename(key[len('decoder_') :], _TOP, src=1)  # -> layers.{i}.<mimlab name>
            (
                unknown.append(key)
                if new is None
                else out.__setitem__('neck.decoder_' + new.replace('layers.', 'blocks.', 1), value)
            )
            continue
        pair = next((p for p in _MAE_DECODER if key == p[0] or (p[0].endswith('.') and key.startswith(p[0]))), None)
        if pair:
            out[pair[1] + key[len(pair[0]) :]] = value
        else:
            encoder[key] = value
    try:
        out.update(vit_from_timm(encoder))
    except KeyError as e:
        unknown += [str(e)]
    if unknown:
        raise KeyError(f'no mimlab MAE counterpart for: {sorted(unknown)}')
    return out


def split_checkpoint(state: dict) -> tuple[dict, dict]:
    """Backbone and head entries of a full-algorithm or backbone-only state dict (with or without ``state_dict``)."""
    state = state.get('state_dict', state.get('model', state))
    if any(k.startswith('backbone.') for k in state):
        backbone = {k[len('backbone.') :]: v for k, v in state.items() if k.startswith('backbone.')}
        head = {k: v for k, v in state.items() if k.startswith('head.') and not k.startswith('head.loss')}
        return backbone, head
    return dict(state), {}


def timm_vit_kwargs(timm_state: dict, num_heads: int | None = None) -> dict:
    """Constructor arguments of timm's generic ``VisionTransformer`` that match a converted state dict.

    Width, depth, patch size, grid, MLP width, LayerScale, pooling and head size are read from the tensors; the head
    count (not visible in weights) is ``num_heads``, else mimlab's arch table's for that (width, depth).

    Raises:
        ValueError: a width/depth outside the arch table without ``num_heads``, saying what to pass.
    """
    from mimlab.models.backbones.vit import VisionTransformer

    embed_dim = timm_state['pos_embed'].shape[-1]
    depth = 1 + max(int(k.split('.')[1]) for k in timm_state if k.startswith('blocks.'))
    heads = {(a['embed_dims'], a['num_layers']): a['num_heads'] for a in VisionTransformer.arch_zoo.values()}
    if num_heads is not None:
        if embed_dim % num_heads:
            raise ValueError(f'{num_heads} heads do not divide the ViT width {embed_dim}')
        heads[(embed_dim, depth)] = num_heads
    if (embed_dim, depth) not in heads:
        raise ValueError(
            f"cannot build timm's ViT for width {embed_dim}, depth {depth}: the number of attention heads is not in "
            'the weights and no standard arch has this width and depth; give it (mmcls2timm.py --num-heads N, the '
            "model.backbone.arch.num_heads of the checkpoint's config)"
        )
    patch = timm_state['patch_embed.proj.weight'].shape[-1]
    side = int(round((timm_state['pos_embed'].shape[1] - 1) ** 0.5))
    use_fc_norm = 'fc_norm.weight' in timm_state
    return dict(
        img_size=side * patch,
        patch_size=patch,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=heads[(embed_dim, depth)],
        mlp_ratio=timm_state['blocks.0.mlp.fc1.weight'].shape[0] / embed_dim,
        qkv_bias='blocks.0.attn.qkv.bias' in timm_state,
        init_values=1.0 if 'blocks.0.ls1.gamma' in timm_state else None,
        global_pool='avg' if use_fc_norm else 'token',
        fc_norm=use_fc_norm,
        final_norm='norm.weight' in timm_state,
        pre_norm='norm_pre.weight' in timm_state,
        num_classes=timm_state['head.weight'].shape[0] if 'head.weight' in timm_state else 0,
    )
