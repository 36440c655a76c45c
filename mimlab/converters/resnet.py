"""ResNet state-dict key mapping between mimlab (= mmpretrain ``ResNet``) and timm ``resnet{18..200}``.

The backbone keys are the same in both (torchvision's names): ``conv1``, ``bn1``, ``layer{s}.{b}.conv/bn{1,2,3}``,
``layer{s}.0.downsample.{0,1}``. Only the classifier moves: mimlab's ``head.fc`` (LinearClsHead) is timm's ``fc``.
The deep stem (``stem.*``) and ``avg_down`` shortcuts (``downsample.2``) of ResNet-C/D have other timm layouts and are
reported as unknown keys rather than converted wrongly. Tensors are never changed.
"""

import re

_BN = r'(weight|bias|running_mean|running_var|num_batches_tracked)'
_BACKBONE = re.compile(
    rf'^(conv1\.weight|bn1\.{_BN}|layer\d+\.\d+\.(conv[123]\.weight|bn[123]\.{_BN}|downsample\.0\.weight|'
    rf'downsample\.1\.{_BN}))$'
)


def resnet_to_timm(backbone: dict, head: dict | None = None) -> dict:
    """mimlab/mmpretrain ResNet backbone keys (no ``backbone.`` prefix) [+ ``head.fc.*``] -> timm ``ResNet`` keys.

    Raises:
        KeyError: naming every key that has no timm counterpart.
    """
    out, unknown = {}, []
    for key, value in backbone.items():
        (out.__setitem__(key, value) if _BACKBONE.match(key) else unknown.append(key))
    for key, value in (head or {}).items():
        if key in ('head.fc.weight', 'head.fc.bias'):
            out['fc.' + key.rsplit('.', 1)[1]] = value
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f'no timm ResNet counterpart for: {sorted(unknown)}')
    return out


def resnet_from_timm(state: dict) -> dict:
    """timm ResNet keys -> mimlab keys with ``backbone.`` / ``head.fc.`` prefixes.

    Raises:
        KeyError: naming every key that has no mimlab counterpart.
    """
    out, unknown = {}, []
    for key, value in state.items():
        if key in ('fc.weight', 'fc.bias'):
            out['head.' + key] = value
        elif _BACKBONE.match(key):
            out['backbone.' + key] = value
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f'no mimlab ResNet counterpart for: {sorted(unknown)}')
    return out


def timm_resnet_model(timm_state: dict):
    """The timm ResNet whose parameters match a (converted) state dict; load it with ``strict=True``.

    Block type, blocks per stage, stage widths and the classifier size are read from the tensors. A standard layout
    is created by its timm name (``resnet18`` ... ``resnet200``), any other with timm's ``ResNet`` class.

    Raises:
        ValueError: for a stem wider or narrower than 64 channels (timm's plain stem is always 64 wide).
    """
    import timm
    from timm.models.resnet import BasicBlock, Bottleneck, ResNet

    from mimlab.models.backbones.resnet import ResNet as MimlabResNet

    blocks = []
    while any(k.startswith(f'layer{len(blocks) + 1}.') for k in timm_state):
        s = len(blocks) + 1
        blocks.append(1 + max(int(k.split('.')[1]) for k in timm_state if k.startswith(f'layer{s}.')))
    bottleneck = 'layer1.0.conv3.weight' in timm_state
    widths = tuple(timm_state[f'layer{s}.0.conv1.weight'].shape[0] for s in range(1, len(blocks) + 1))
    if timm_state['conv1.weight'].shape[0] != 64:
        raise ValueError(f'timm ResNet needs a 64-channel stem, got {timm_state["conv1.weight"].shape[0]}')
    kwargs = dict(
        num_classes=timm_state['fc.weight'].shape[0] if 'fc.weight' in timm_state else 0,
        in_chans=timm_state['conv1.weight'].shape[1],
    )
    for depth, (block, stage_blocks) in MimlabResNet.arch_settings.items():
        standard = isinstance(depth, int) and widths == (64, 128, 256, 512)
        if standard and tuple(stage_blocks) == tuple(blocks) and (block.expansion == 4) == bottleneck:
            return timm.create_model(f'resnet{depth}', pretrained=False, **kwargs)
    block = Bottleneck if bottleneck else BasicBlock
    return ResNet(block=block, layers=tuple(blocks), channels=widths, **kwargs)
