"""ConvNeXt state-dict key mapping between mimlab (= mmpretrain ``ConvNeXt``) and timm ``ConvNeXt``.

Pure renames (no tensor changes): the stem, the per-stage downsample layers, block convs / norms / MLP / LayerScale,
ConvNeXt-V2's GRN (``grn.gamma/beta`` <-> ``mlp.grn.weight/bias``), and the norm of the last stage, ``norm3``, which
timm applies inside its head (``head.norm``) after the global average, i.e. mimlab's ``gap_before_final_norm=True``.
Out norms of earlier stages (``norm0..2``) have no timm counterpart.
"""

import re

# (mimlab template, timm template): {i} stage >= 1, {s} any stage, {j} block, {k} 0/1 inside a downsample layer,
# {p} weight/bias
_PAIRS = [
    ('downsample_layers.0.0.{p}', 'stem.0.{p}'),
    ('downsample_layers.0.1.{p}', 'stem.1.{p}'),
    ('downsample_layers.{i}.{k}.{p}', 'stages.{i}.downsample.{k}.{p}'),
    ('stages.{s}.{j}.depthwise_conv.{p}', 'stages.{s}.blocks.{j}.conv_dw.{p}'),
    ('stages.{s}.{j}.norm.{p}', 'stages.{s}.blocks.{j}.norm.{p}'),
    ('stages.{s}.{j}.pointwise_conv1.{p}', 'stages.{s}.blocks.{j}.mlp.fc1.{p}'),
    ('stages.{s}.{j}.pointwise_conv2.{p}', 'stages.{s}.blocks.{j}.mlp.fc2.{p}'),
    ('stages.{s}.{j}.grn.gamma', 'stages.{s}.blocks.{j}.mlp.grn.weight'),
    ('stages.{s}.{j}.grn.beta', 'stages.{s}.blocks.{j}.mlp.grn.bias'),
    ('stages.{s}.{j}.gamma', 'stages.{s}.blocks.{j}.gamma'),
    ('norm3.{p}', 'head.norm.{p}'),
    ('head.fc.{p}', 'head.fc.{p}'),
]
_FIELDS = {'i': r'[1-9]\d*', 's': r'\d+', 'j': r'\d+', 'k': r'[01]', 'p': r'weight|bias'}


def _regex(template: str) -> re.Pattern:
    pattern = re.escape(template)
    for name, field in _FIELDS.items():
        pattern = pattern.replace(re.escape(f'{{{name}}}'), f'(?P<{name}>{field})')
    return re.compile(f'^{pattern}$')


_COMPILED = [(_regex(a), _regex(b), a, b) for a, b in _PAIRS]


def _rename(key: str, src: int) -> str | None:
    for entry in _COMPILED:
        m = entry[src].match(key)
        if m:
            return entry[2 + 1 - src].format(**m.groupdict())
    return None


def convnext_to_timm(backbone: dict, head: dict | None = None) -> dict:
    """mimlab/mmpretrain ConvNeXt backbone keys (no ``backbone.`` prefix) [+ ``head.fc.*``] -> timm keys.

    Raises:
        KeyError: naming every key that has no timm counterpart.
    """
    out, unknown = {}, []
    for key, value in backbone.items():
        new = None if key.startswith('head.') else _rename(key, src=0)
        (unknown.append(key) if new is None else out.__setitem__(new, value))
    for key, value in (head or {}).items():
        new = _rename(key, src=0) if key.startswith('head.') else None
        (unknown.append(key) if new is None else out.__setitem__(new, value))
    if unknown:
        raise KeyError(f'no timm ConvNeXt counterpart for: {sorted(unknown)}')
    return out


def convnext_from_timm(state: dict) -> dict:
    """timm ConvNeXt keys -> mimlab keys with ``backbone.`` / ``head.fc.`` prefixes.

    Raises:
        KeyError: naming every key that has no mimlab counterpart (e.g. ``norm_pre`` of ``head_norm_first`` models).
    """
    out, unknown = {}, []
    for key, value in state.items():
        new = _rename(key, src=1)
        if new is None:
            unknown.append(key)
        else:
            out[new if new.startswith('head.') else 'backbone.' + new] = value
    if unknown:
        raise KeyError(f'no mimlab ConvNeXt counterpart for: {sorted(unknown)}')
    return out


def timm_convnext_model(timm_state: dict):
    """The timm ConvNeXt whose parameters match a (converted) state dict; load it with ``strict=True``.

    Depths, widths, stem patch size, LayerScale, GRN, Linear-or-1x1-conv MLP and the classifier size are read from the
    tensors. A layout of a named timm model (``convnext_tiny`` ... ``convnext_xlarge``, ``convnextv2_*`` with GRN) is
    created by that name, any other with timm's ``ConvNeXt`` class.

    Raises:
        ValueError: for a 2x2 stem (``stem_patch_size=2``), which timm follows with an extra stage-0 downsample.
    """
    import timm
    from timm.models.convnext import ConvNeXt

    from mimlab.models.backbones.convnext import ConvNeXt as MimlabConvNeXt

    depths = []
    while f'stages.{len(depths)}.blocks.0.conv_dw.weight' in timm_state:
        s = len(depths)
        prefix = f'stages.{s}.blocks.'
        depths.append(1 + max(int(k[len(prefix) :].split('.')[0]) for k in timm_state if k.startswith(prefix)))
    dims = [timm_state[f'stages.{s}.blocks.0.conv_dw.weight'].shape[0] for s in range(len(depths))]
    use_grn = 'stages.0.blocks.0.mlp.grn.weight' in timm_state
    patch_size = timm_state['stem.0.weight'].shape[-1]
    if patch_size == 2:
        raise ValueError('timm ConvNeXt gives stage 0 a stride-2 downsample behind a 2x2 stem; mimlab has none there')
    kwargs = dict(
        depths=tuple(depths),
        dims=tuple(dims),
        in_chans=timm_state['stem.0.weight'].shape[1],
        patch_size=patch_size,
        # the value is overwritten by the checkpoint; only None (no gamma) versus a number matters
        ls_init_value=1e-6 if 'stages.0.blocks.0.gamma' in timm_state else None,
        use_grn=use_grn,
        conv_mlp=timm_state['stages.0.blocks.0.mlp.fc1.weight'].ndim == 4,
        num_classes=timm_state['head.fc.weight'].shape[0] if 'head.fc.weight' in timm_state else 0,
    )
    for arch, setting in MimlabConvNeXt.arch_settings.items():
        name = f'convnext{"v2" if use_grn else ""}_{arch}'
        if setting == dict(depths=depths, channels=dims) and timm.is_model(name):
            return timm.create_model(name, pretrained=False, **kwargs)
    return ConvNeXt(**kwargs)
