"""ResNet (He et al. 2016) with mmpretrain 1.2.0's ``ResNet`` state-dict keys.

Legend: ``B`` batch, ``C_in`` / ``C_mid`` / ``C_out`` block input / inner / output width
(``C_out = expansion * C_mid``; expansion 1 for BasicBlock, 4 for Bottleneck), ``H x W`` map of a stage.

Keys: ``conv1``, ``bn1`` (7x7 stem) or ``stem.{0,1,2}.conv/bn`` (``deep_stem``), ``layer{s}.{b}.conv{1,2[,3]}``,
``layer{s}.{b}.bn{1,2[,3]}``, ``layer{s}.0.downsample.{0,1}`` (conv, bn) or ``.{1,2}`` behind an average pool
(``avg_down`` on a strided stage). With BN these are also torchvision's and timm's ``resnet{depth}`` keys.
"""

from collections.abc import Mapping, Sequence

import torch
from timm.layers import DropPath
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mimlab.registry import MODELS

from .base import BaseBackbone, SiteHook

_NORMS = {'BN': nn.BatchNorm2d, 'BN2d': nn.BatchNorm2d, 'SyncBN': nn.SyncBatchNorm}


def build_norm(norm_cfg: dict, num_features: int) -> nn.Module:
    """A batch norm from an mmcv-style config, e.g. ``dict(type='BN', requires_grad=True, eps=1e-5)``.

    Only BN / SyncBN: other norms have other key names in mmpretrain (``gn1``, ``in1``) and would break checkpoints.
    """
    cfg = dict(norm_cfg)
    kind = cfg.pop('type')
    requires_grad = cfg.pop('requires_grad', True)
    if kind not in _NORMS:
        raise ValueError(f'ResNet supports norm types {sorted(_NORMS)}, got {kind!r}')
    norm = _NORMS[kind](num_features, **cfg)
    for p in norm.parameters():
        p.requires_grad = requires_grad
    return norm


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual: (B, C_in, H, W) -> (B, C_out, H/stride, W/stride).

    As mmpretrain, only the first conv is dilated (the second keeps padding 1); ``style`` is accepted for a uniform
    signature and has no effect.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        style: str = 'pytorch',
        norm_cfg: dict | None = None,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        norm_cfg = norm_cfg or dict(type='BN')
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = build_norm(norm_cfg, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = build_norm(norm_cfg, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        # mmpretrain's threshold: rates below 1e-5 build no DropPath at all
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 1e-5 else nn.Identity()

    @property
    def last_norm(self) -> nn.Module:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(self.drop_path(out) + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand, with a residual: (B, C_in, H, W) -> (B, 4 * C_mid, H/stride, W/stride).

    ``style='pytorch'`` strides the 3x3 conv (ResNet v1.5, torchvision, timm); ``'caffe'`` strides the first 1x1.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        style: str = 'pytorch',
        norm_cfg: dict | None = None,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        if style not in ('pytorch', 'caffe'):
            raise ValueError(f"style must be 'pytorch' or 'caffe', got {style!r}")
        norm_cfg = norm_cfg or dict(type='BN')
        mid = out_channels // self.expansion
        stride1, stride2 = (1, stride) if style == 'pytorch' else (stride, 1)
        self.conv1 = nn.Conv2d(in_channels, mid, 1, stride1, bias=False)
        self.bn1 = build_norm(norm_cfg, mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride2, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = build_norm(norm_cfg, mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.bn3 = build_norm(norm_cfg, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 1e-5 else nn.Identity()

    @property
    def last_norm(self) -> nn.Module:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, C_in, H, W) -> (B, C_mid, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # -> (B, C_mid, H/stride, W/stride)
        out = self.bn3(self.conv3(out))  # -> (B, C_out, H/stride, W/stride)
        return self.relu(self.drop_path(out) + identity)


class ConvBNReLU(nn.Sequential):
    """3x3 conv, BN, ReLU with mmcv ``ConvModule``'s key names (``conv``, ``bn``), for the deep stem."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm_cfg: dict):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn = build_norm(norm_cfg, out_channels)
        self.activate = nn.ReLU(inplace=True)


def make_res_layer(
    block: type[BasicBlock | Bottleneck],
    num_blocks: int,
    in_channels: int,
    out_channels: int,
    stride: int,
    dilation: int,
    style: str,
    avg_down: bool,
    norm_cfg: dict,
    drop_path_rates: Sequence[float],
) -> nn.Sequential:
    """One stage: the first block changes width / resolution (with a projected shortcut), the rest keep them."""
    downsample = None
    if stride != 1 or in_channels != out_channels:
        layers = []
        if avg_down and stride != 1:
            # ResNet-D: average-pool then a stride-1 projection, instead of a strided 1x1 that skips 3/4 of the pixels
            layers.append(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False))
            stride_conv = 1
        else:
            stride_conv = stride
        layers += [nn.Conv2d(in_channels, out_channels, 1, stride_conv, bias=False), build_norm(norm_cfg, out_channels)]
        downsample = nn.Sequential(*layers)
    blocks = [block(in_channels, out_channels, stride, dilation, downsample, style, norm_cfg, drop_path_rates[0])]
    blocks += [
        block(out_channels, out_channels, 1, dilation, None, style, norm_cfg, drop_path_rates[i])
        for i in range(1, num_blocks)
    ]
    return nn.Sequential(*blocks)


@MODELS.register_module()
class ResNet(BaseBackbone):
    """ResNet v1.5 encoder (stride on the 3x3 conv) with optional deep stem (v1c) and average-pool shortcut (v1d).

    Args:
        depth: 18, 34 (BasicBlock), 50, 101, 152, 200 (Bottleneck) or 'test' (Bottleneck, one block per stage,
            stem 16 / base 8 channels unless given: CPU tests in milliseconds). 200 is not in mmpretrain 1.2.0's
            table; its (3, 24, 36, 3) layout is timm's / openmixup's ``resnet200``.
        in_channels: Image channels.
        stem_channels: Width after the stem (64; 16 for 'test').
        base_channels: ``C_mid`` of the first stage, doubled per stage (64; 8 for 'test').
        num_stages: 1-4 stages.
        strides: Stride of the first block of each stage.
        dilations: Dilation of each stage.
        out_indices: Stages whose outputs (B, C_s, H_s, W_s) are returned; negative counts from the end.
        style: 'pytorch' (stride on the 3x3 conv) or 'caffe' (on the first 1x1 conv).
        deep_stem: Three 3x3 convs instead of the 7x7 (keys ``stem.*``).
        avg_down: Average-pool before the projection shortcut of strided stages.
        frozen_stages: Freeze the stem (0) and stages 1..frozen_stages (-1: nothing); their BNs stay in eval mode.
        norm_cfg: ``dict(type='BN' | 'SyncBN', requires_grad=..., eps=..., momentum=...)``.
        norm_eval: Keep every BN in eval mode (frozen running statistics) while training.
        zero_init_residual: Zero the last BN of every block at init so each block starts as the identity.
        drop_path_rate: Stochastic depth, linear from 0 over all blocks.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')`` (then no random init).
    """

    arch_settings = {
        18: (BasicBlock, (2, 2, 2, 2)),
        34: (BasicBlock, (3, 4, 6, 3)),
        50: (Bottleneck, (3, 4, 6, 3)),
        101: (Bottleneck, (3, 4, 23, 3)),
        152: (Bottleneck, (3, 8, 36, 3)),
        200: (Bottleneck, (3, 24, 36, 3)),
        'test': (Bottleneck, (1, 1, 1, 1)),
    }
    _test_widths = (16, 8)  # stem_channels, base_channels of depth='test'
    feature_layout = 'map'

    def __init__(
        self,
        depth: int | str,
        in_channels: int = 3,
        stem_channels: int | None = None,
        base_channels: int | None = None,
        num_stages: int = 4,
        strides: Sequence[int] = (1, 2, 2, 2),
        dilations: Sequence[int] = (1, 1, 1, 1),
        out_indices: int | Sequence[int] = (3,),
        style: str = 'pytorch',
        deep_stem: bool = False,
        avg_down: bool = False,
        frozen_stages: int = -1,
        norm_cfg: dict | None = None,
        norm_eval: bool = False,
        zero_init_residual: bool = True,
        drop_path_rate: float = 0.0,
        init_cfg: dict | list | None = None,
    ):
        super().__init__(init_cfg=init_cfg)
        if depth not in self.arch_settings:
            raise KeyError(f'unknown ResNet depth {depth!r}; choose from {list(self.arch_settings)}')
        if not 1 <= num_stages <= 4 or not len(strides) == len(dilations) == num_stages:
            raise ValueError(f'num_stages={num_stages} needs 1-4 stages and as many strides {strides} / dilations')
        default_stem, default_base = self._test_widths if depth == 'test' else (64, 64)
        stem_channels = default_stem if stem_channels is None else stem_channels
        base_channels = default_base if base_channels is None else base_channels
        norm_cfg = norm_cfg or dict(type='BN', requires_grad=True)
        self.depth = depth
        self.block, stage_blocks = self.arch_settings[depth]
        self.stage_blocks = tuple(stage_blocks[:num_stages])
        self.num_stages = num_stages
        self.out_indices = self.resolve_out_indices(out_indices, num_stages)
        self.deep_stem = deep_stem
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.zero_init_residual = zero_init_residual

        if deep_stem:
            self.stem = nn.Sequential(
                ConvBNReLU(in_channels, stem_channels // 2, 2, norm_cfg),
                ConvBNReLU(stem_channels // 2, stem_channels // 2, 1, norm_cfg),
                ConvBNReLU(stem_channels // 2, stem_channels, 1, norm_cfg),
            )
        else:
            self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
            self.bn1 = build_norm(norm_cfg, stem_channels)
            self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        # rates over the blocks of all stages of the arch, also those cut off by num_stages (as mmpretrain)
        dpr = torch.linspace(0, drop_path_rate, sum(stage_blocks), device='cpu').tolist()
        self.embed_dims = stem_channels
        channels, strides_out, stride = [], [], 4  # the stem: a stride-2 conv, then a stride-2 max pool
        self.res_layers = []
        width_in, width_out = stem_channels, base_channels * self.block.expansion
        for i, num_blocks in enumerate(self.stage_blocks):
            layer = make_res_layer(
                self.block,
                num_blocks,
                width_in,
                width_out,
                strides[i],
                dilations[i],
                style,
                avg_down,
                norm_cfg,
                dpr[:num_blocks],
            )
            dpr = dpr[num_blocks:]
            self.add_module(f'layer{i + 1}', layer)
            self.res_layers.append(f'layer{i + 1}')
            stride *= strides[i]
            channels.append(width_out)
            strides_out.append(stride)
            width_in, width_out = width_out, width_out * 2
        self.stage_channels, self.stage_strides = tuple(channels), tuple(strides_out)
        # site l: the input of layer{l+1}, i.e. the stem's output or the previous stage's
        self.site_channels = (stem_channels, *self.stage_channels[:-1])
        self.site_strides = (4, *self.stage_strides[:-1])
        self.feat_dim = self.stage_channels[-1]
        self._freeze_stages()

    # ------------------------------------------------------------------ init
    def init_random_weights(self) -> None:
        """mmpretrain's init: Kaiming-normal convs (fan_out, ReLU gain), unit BNs, and with ``zero_init_residual``
        the last BN of each block zeroed."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (_BatchNorm, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_norm.weight)
                    nn.init.zeros_(m.last_norm.bias)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        stem = [self.stem] if self.deep_stem else [self.conv1, self.bn1]
        self.freeze(stem + [getattr(self, name) for name in self.res_layers[: self.frozen_stages]])

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # --------------------------------------------------------------- forward
    def forward_stages(self, x: torch.Tensor, hooks: Mapping[int, SiteHook] | None = None) -> tuple[torch.Tensor, ...]:
        """Args: x (B, C, H, W); hooks: per mask site l, on the input of ``layer{l+1}``.

        Returns: per out index s, (B, stage_channels[s], H_s, W_s); H_s = H/32 for the last stage with the default
        strides.
        """
        x = self.stem(x) if self.deep_stem else self.relu(self.bn1(self.conv1(x)))  # stride-2 conv(s)
        x = self.maxpool(x)  # -> (B, stem_channels, H/4, W/4)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = self.at_site(i, x, tuple(x.shape[-2:]), hooks)
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    # -------------------------------------------------------------- contract
    def no_weight_decay(self) -> set[str]:
        return set()  # BN weights and biases are 1-D: the optimizer constructor already exempts them

    def get_layer_depth(self, param_name: str, prefix: str = '') -> tuple[int, int]:
        """Depth for layer-wise lr decay: stem 0, residual block ``layer{s}.{b}`` ``sum(blocks[:s-1]) + b + 1``
        (its projection shortcut included), anything else (heads) last.

        mmpretrain 1.2.0 instead groups blocks of stages 2 and 3 in twos to sixes (7 + 2 depths for ResNet-50) and
        ignores ``prefix``; this rule is one depth per block as for ViT and Swin.

        Returns:
            ``(depth, num_layers)`` with ``num_layers = sum(stage_blocks) + 2`` (18 for ResNet-50).
        """
        num_layers = sum(self.stage_blocks) + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix) :]
        if name.startswith(('conv1.', 'bn1.', 'stem.')):
            return 0, num_layers
        if name.startswith('layer'):
            stage, block = name.split('.')[:2]
            s = int(stage[len('layer') :])
            return sum(self.stage_blocks[: s - 1]) + int(block) + 1, num_layers
        return num_layers - 1, num_layers
