"""ConvNeXt (Liu et al. 2022) and ConvNeXt-V2's GRN (Woo et al. 2023) with mmpretrain 1.2.0's ``ConvNeXt`` keys.

Legend: ``B`` batch, ``C`` stage width, ``H x W`` map of a stage, ``4C`` inverted-bottleneck width.

Keys: ``downsample_layers.0.{0,1}`` (patchify conv, LayerNorm: the stem), ``downsample_layers.{i}.{0,1}`` (LayerNorm,
2x2 stride-2 conv) for i >= 1, ``stages.{i}.{j}.depthwise_conv / norm / pointwise_conv1 / pointwise_conv2 / gamma``
(``grn.gamma / grn.beta`` with GRN), ``norm{i}`` for each out index.

Every LayerNorm runs channels-last: ``F.layer_norm`` on a (B, H, W, C) view of the map, whose permute back leaves a
channels_last-strided (B, C, H, W) tensor that the next conv takes without a copy.
"""

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from torch import nn

from mimlab.registry import MODELS

from ..layers import checkpoint_module
from .base import BaseBackbone, SiteHook


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of each pixel: (B, C, H, W) -> (B, C, H, W), eps 1e-6 as ConvNeXt."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)  # (B,H,W,C)
        return x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


class GRN(nn.Module):
    """Global Response Normalization of ConvNeXt-V2: each channel is rescaled by its spatial L2 norm relative to the
    mean over channels, ``x + gamma * x * nx + beta``; zero-initialised, so it starts as the identity.

    Args:
        channels: Width it acts on (the 4C of the block's MLP).
        eps: Added to the mean norm.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
        """x: (B, H, W, C) when ``channels_last`` else (B, C, H, W); same shape out."""
        spatial, channel, view = ((1, 2), -1, (-1,)) if channels_last else ((2, 3), 1, (-1, 1, 1))
        gx = torch.linalg.vector_norm(x, dim=spatial, keepdim=True)  # (B, 1, 1, C) or (B, C, 1, 1)
        nx = gx / (gx.mean(dim=channel, keepdim=True) + self.eps)
        return self.gamma.view(view) * (x * nx) + self.beta.view(view) + x


class ConvNeXtBlock(nn.Module):
    """7x7 depthwise conv, LayerNorm, 4x MLP (GELU, optional GRN), LayerScale, residual: (B, C, H, W) -> same.

    Args:
        channels: Width C.
        drop_path_rate: Stochastic depth of the residual branch.
        layer_scale_init_value: Init of the per-channel ``gamma`` (0: no LayerScale, as ConvNeXt-V2).
        use_grn: GRN after the GELU (ConvNeXt-V2).
        linear_pw_conv: Pointwise convs as Linear on (B, H, W, C) (the official layout, keys of shape (4C, C)); else
            as 1x1 Conv2d on (B, C, H, W) (keys of shape (4C, C, 1, 1)).
        mlp_ratio: Inner width over C.
    """

    def __init__(
        self,
        channels: int,
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        use_grn: bool = False,
        linear_pw_conv: bool = True,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        mid = int(mlp_ratio * channels)
        self.linear_pw_conv = linear_pw_conv
        self.depthwise_conv = nn.Conv2d(channels, channels, kernel_size=7, padding=3, groups=channels)
        if linear_pw_conv:
            self.norm = nn.LayerNorm(channels, eps=1e-6)
            self.pointwise_conv1 = nn.Linear(channels, mid)
            self.pointwise_conv2 = nn.Linear(mid, channels)
        else:
            self.norm = LayerNorm2d(channels)
            self.pointwise_conv1 = nn.Conv2d(channels, mid, 1)
            self.pointwise_conv2 = nn.Conv2d(mid, channels, 1)
        self.act = nn.GELU()
        self.grn = GRN(mid) if use_grn else None
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(channels)) if layer_scale_init_value > 0 else None
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise_conv(x)
        if self.linear_pw_conv:
            y = self.act(self.pointwise_conv1(self.norm(y.permute(0, 2, 3, 1))))  # (B, C, H, W) -> (B, H, W, 4C)
            if self.grn is not None:
                y = self.grn(y, channels_last=True)
            y = self.pointwise_conv2(y).permute(0, 3, 1, 2)  # (B, H, W, 4C) -> (B, C, H, W)
        else:
            y = self.act(self.pointwise_conv1(self.norm(y)))  # (B, C, H, W) -> (B, 4C, H, W)
            if self.grn is not None:
                y = self.grn(y, channels_last=False)
            y = self.pointwise_conv2(y)  # -> (B, C, H, W)
        if self.gamma is not None:
            y = y * self.gamma.view(1, -1, 1, 1)
        return x + self.drop_path(y)


@MODELS.register_module()
class ConvNeXt(BaseBackbone):
    """Four stages of ConvNeXt blocks at stride 4, 8, 16, 32 (v1; v2 with ``use_grn=True,
    layer_scale_init_value=0``).

    Args:
        arch: A key of ``arch_settings`` (mmpretrain 1.2.0's table: atto ... huge; 'test' is tiny, for CPU tests) or a
            dict with ``depths`` and ``channels``.
        in_channels: Image channels.
        stem_patch_size: Side and stride of the patchify stem conv.
        drop_path_rate: Stochastic depth, linear from 0 over all blocks.
        layer_scale_init_value: LayerScale init (0 disables ``gamma``).
        out_indices: Stages whose normalised outputs are returned; negative counts from the end.
        frozen_stages: Freeze the first ``frozen_stages`` stages with their downsample layers (0: nothing), as
            mmpretrain (the ``norm{i}`` out norms stay trainable).
        gap_before_final_norm: Return (B, C) = ``norm{i}`` of the global average (classification); else the normalised
            (B, C, H, W) map (dense tasks).
        with_cp: Recompute each block in the backward pass (activation checkpointing) to save memory.
        use_grn: GRN in every block (ConvNeXt-V2).
        linear_pw_conv: Pointwise convs as Linear layers (the default and the official layout).
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')`` (then no random init).
    """

    feature_layout = 'map'
    arch_settings = {
        'atto': dict(depths=[2, 2, 6, 2], channels=[40, 80, 160, 320]),
        'femto': dict(depths=[2, 2, 6, 2], channels=[48, 96, 192, 384]),
        'pico': dict(depths=[2, 2, 6, 2], channels=[64, 128, 256, 512]),
        'nano': dict(depths=[2, 2, 8, 2], channels=[80, 160, 320, 640]),
        'tiny': dict(depths=[3, 3, 9, 3], channels=[96, 192, 384, 768]),
        'small': dict(depths=[3, 3, 27, 3], channels=[96, 192, 384, 768]),
        'base': dict(depths=[3, 3, 27, 3], channels=[128, 256, 512, 1024]),
        'large': dict(depths=[3, 3, 27, 3], channels=[192, 384, 768, 1536]),
        'xlarge': dict(depths=[3, 3, 27, 3], channels=[256, 512, 1024, 2048]),
        'huge': dict(depths=[3, 3, 27, 3], channels=[352, 704, 1408, 2816]),
        'test': dict(depths=[1, 1, 2, 1], channels=[8, 16, 32, 64]),
    }

    def __init__(
        self,
        arch: str | dict = 'tiny',
        in_channels: int = 3,
        stem_patch_size: int = 4,
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        out_indices: int | Sequence[int] = -1,
        frozen_stages: int = 0,
        gap_before_final_norm: bool = True,
        with_cp: bool = False,
        use_grn: bool = False,
        linear_pw_conv: bool = True,
        init_cfg: dict | list | None = None,
    ):
        super().__init__(init_cfg=init_cfg)
        arch = self.resolve_arch(arch, self.arch_settings, {'depths', 'channels'}, 'ConvNeXt')
        self.depths, self.channels = list(arch['depths']), list(arch['channels'])
        if len(self.depths) != len(self.channels):
            raise ValueError(f'depths {self.depths} and channels {self.channels} differ in length')
        self.num_stages = len(self.depths)
        self.out_indices = self.resolve_out_indices(out_indices, self.num_stages)
        self.embed_dims = self.channels[0]
        self.stage_channels = tuple(self.channels)
        self.stage_strides = tuple(stem_patch_size * 2**i for i in range(self.num_stages))
        self.site_channels, self.site_strides = self.stage_channels, self.stage_strides
        self.frozen_stages = frozen_stages
        self.gap_before_final_norm = gap_before_final_norm

        stem = nn.Sequential(
            nn.Conv2d(in_channels, self.channels[0], kernel_size=stem_patch_size, stride=stem_patch_size),
            LayerNorm2d(self.channels[0]),
        )
        self.downsample_layers = nn.ModuleList([stem])
        self.downsample_layers.extend(
            nn.Sequential(LayerNorm2d(c_in), nn.Conv2d(c_in, c_out, kernel_size=2, stride=2))
            for c_in, c_out in zip(self.channels[:-1], self.channels[1:])
        )
        dpr = torch.linspace(0, drop_path_rate, sum(self.depths), device='cpu').tolist()
        self.stages = nn.ModuleList()
        for depth, channels in zip(self.depths, self.channels):
            blocks = [
                ConvNeXtBlock(channels, rate, layer_scale_init_value, use_grn, linear_pw_conv) for rate in dpr[:depth]
            ]
            dpr = dpr[depth:]
            self.stages.append(nn.Sequential(*blocks))
            if with_cp:
                for block in blocks:
                    checkpoint_module(block)
        for i in self.out_indices:
            self.add_module(f'norm{i}', LayerNorm2d(self.channels[i]))
        self._freeze_stages()

    # ------------------------------------------------------------------ init
    def init_random_weights(self) -> None:
        """mmpretrain's init: trunc-normal(0.02) convs and Linears with zero bias, unit LayerNorms; ``gamma`` keeps
        ``layer_scale_init_value`` and GRN its zeros."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _freeze_stages(self) -> None:
        self.freeze([m for i in range(self.frozen_stages) for m in (self.downsample_layers[i], self.stages[i])])

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self

    # --------------------------------------------------------------- forward
    def forward_stages(self, x: torch.Tensor, hooks: Mapping[int, SiteHook] | None = None) -> tuple[torch.Tensor, ...]:
        """Args: x (B, C_in, H, W); hooks: per mask site i, on stage i's input after its downsample layer.

        Returns: per out index i, (B, C_i) with ``gap_before_final_norm``, else (B, C_i, H / (p * 2^i), W / (p * 2^i)).
        """
        outs = []
        for i, stage in enumerate(self.stages):
            x = self.downsample_layers[i](x)  # (B, C_in, H, W) -> (B, C_0, H/p, W/p); later (B, C_i, H/2, W/2)
            x = self.at_site(i, x, tuple(x.shape[-2:]), hooks)
            for block in stage:
                x = block(x)
            if i in self.out_indices:
                norm = getattr(self, f'norm{i}')
                if self.gap_before_final_norm:
                    gap = x.mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
                    outs.append(F.layer_norm(gap, norm.normalized_shape, norm.weight, norm.bias, norm.eps))
                else:
                    outs.append(norm(x).contiguous())
        return tuple(outs)

    # -------------------------------------------------------------- contract
    def no_weight_decay(self) -> set[str]:
        return set()  # LayerNorm, LayerScale and GRN parameters are 1-D: the optimizer constructor exempts them

    def get_layer_depth(self, param_name: str, prefix: str = '') -> tuple[int, int]:
        """Depth for layer-wise lr decay: stem 0, block ``stages.i.j`` ``sum(depths[:i]) + j + 1``, the downsample
        layer in front of stage i with that stage's first block, anything else (``norm{i}``, heads) last.

        mmpretrain 1.2.0 (and the official ConvNeXt fine-tuning) instead groups stage-2 blocks in threes into 12 + 2
        depths; this rule is one depth per block as for ViT and Swin.

        Returns:
            ``(depth, num_layers)`` with ``num_layers = sum(depths) + 2`` (20 for ConvNeXt-T).
        """
        num_layers = sum(self.depths) + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix) :]
        parts = name.split('.')
        if parts[0] == 'downsample_layers':
            i = int(parts[1])
            return (0 if i == 0 else sum(self.depths[:i]) + 1), num_layers
        if parts[0] == 'stages':
            i, j = int(parts[1]), int(parts[2])
            return sum(self.depths[:i]) + j + 1, num_layers
        return num_layers - 1, num_layers
