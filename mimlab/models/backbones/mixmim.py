"""MixMIM / MixMAE encoder (Liu et al., CVPR 2023) with mmpretrain 1.2.0's ``MixMIMTransformer`` state-dict keys.

A Swin-like hierarchy without shifted windows: 4-px patches, four stages of plain window attention with a
relative-position bias (windows 14/14/14/7 at 224 px, so stages 3 and 4 attend globally), patch merging between
stages, and a fixed 2-D sin-cos absolute position table added after the patch embedding.

Legend: ``B`` batch, ``H x W`` token grid of a stage, ``L = H * W``, ``C`` stage width, ``w`` window side,
``N = w * w`` tokens per window, ``nW`` windows per image, ``h`` heads.

Keys: ``patch_embed.projection/norm``, ``absolute_pos_embed``, ``layers.{s}.blocks.{b}.ln1/ln2``,
``layers.{s}.blocks.{b}.attn.{qkv,proj,relative_position_bias_table,relative_position_index}``,
``layers.{s}.blocks.{b}.ffn.layers.0.0/ffn.layers.1``, ``layers.{s}.downsample.norm/reduction`` (mmcv's unfold
channel order, as mmpretrain), ``norm``.

Each block can take a *source mask*: per token, which of two images it came from (MixMIM pretraining mixes two
images into one token map). Attention between tokens of different sources is blocked, so each image is encoded as if
alone; the mask is shared by the whole batch, so one (nW, N, N) additive mask serves every image.
"""

from collections.abc import Mapping, Sequence

import torch
from mmengine.logging import MMLogger
from timm.layers import DropPath, trunc_normal_
from torch import nn

from mimlab.registry import MODELS

from ..layers import FFN, PatchEmbed, build_2d_sincos_position_embedding, checkpoint_module, resize_pos_embed
from .base import BaseBackbone, SiteHook
from .swin import PatchMerging, WindowMSA, adapt_relative_position_tables, window_partition, window_reverse


def source_attention_mask(source: torch.Tensor, hw: tuple[int, int], w: int) -> torch.Tensor:
    """Additive attention mask that keeps attention within tokens of the same source image.

    Args:
        source: (1, L, 1) with 1 where the token comes from the partner image, 0 where from the own image.
        hw: The stage grid (H, W), L = H * W.
        w: Window side.

    Returns:
        (nW, N, N) float: 0 between tokens of one source, -inf across sources (each token always sees itself, so
        no row is fully masked). The references subtract 1e30 instead, which gives the same softmax in fp32.
    """
    m = window_partition(source.reshape(1, *hw, 1).float(), w)  # (1, L, 1) -> (nW, N, 1)
    same = m == m.transpose(1, 2)  # (nW, N, N)
    return torch.zeros(same.shape, device=source.device).masked_fill(~same, float('-inf'))


class MixMIMBlock(nn.Module):
    """Pre-norm block: window attention (no shift) then a 4x MLP, each with a residual and stochastic depth.

    Args:
        embed_dims: Width C.
        num_heads: Heads h.
        window_size: Window side; clamped to the stage grid when the grid is not larger (a global window).
        resolution: The stage grid (H, W) this block is built for.
        mlp_ratio: MLP width / C.
        qkv_bias: Bias in the qkv projection.
        drop_rate: Dropout after the attention and MLP projections.
        attn_drop_rate: Attention dropout.
        drop_path_rate: Stochastic depth of both branches.
        norm_eps: LayerNorm epsilon.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        window_size: int,
        resolution: tuple[int, int],
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.window_size = min(resolution) if min(resolution) <= window_size else window_size
        if resolution[0] % self.window_size or resolution[1] % self.window_size:
            raise ValueError(
                f'MixMIM stage grid {resolution[0]}x{resolution[1]} is not a whole number of {self.window_size}x'
                f'{self.window_size} windows; choose window sizes that divide each stage grid (14/14/14/7 at 224 px, '
                '16/16/24/12 at 384 px)'
            )
        self.ln1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = WindowMSA(embed_dims, self.window_size, num_heads, qkv_bias, attn_drop_rate, drop_rate)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.ln2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.ffn = FFN(embed_dims, int(mlp_ratio * embed_dims), ffn_drop=drop_rate, drop_path_rate=drop_path_rate)

    def forward(self, x: torch.Tensor, hw: tuple[int, int], attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Args: x (B, L, C); hw = (H, W); attn_mask (nW, N, N) from :func:`source_attention_mask` or None.

        Returns: (B, L, C).
        """
        B, L, C = x.shape
        w = self.window_size
        y = window_partition(self.ln1(x).view(B, *hw, C), w)  # (B, L, C) -> (B * nW, N, C)
        y = window_reverse(self.attn(y, attn_mask), *hw, w).reshape(B, L, C)  # -> (B, H, W, C) -> (B, L, C)
        x = x + self.drop_path(y)
        return self.ffn(self.ln2(x), identity=x)


class MixMIMLayer(nn.Module):
    """One stage: ``depth`` blocks on a fixed grid, then patch merging (except in the last stage)."""

    def __init__(
        self,
        embed_dims: int,
        depth: int,
        num_heads: int,
        window_size: int,
        resolution: tuple[int, int],
        drop_paths: Sequence[float],
        downsample: bool,
        with_cp: bool = False,
        **block_kwargs,
    ):
        super().__init__()
        self.resolution = resolution
        self.blocks = nn.ModuleList(
            MixMIMBlock(embed_dims, num_heads, window_size, resolution, drop_path_rate=dp, **block_kwargs)
            for dp in drop_paths[:depth]
        )
        if with_cp:
            for block in self.blocks:
                checkpoint_module(block)
        norm_eps = block_kwargs.get('norm_eps', 1e-5)
        self.downsample = PatchMerging(embed_dims, 2 * embed_dims, norm_eps) if downsample else None

    @property
    def window_size(self) -> int:
        return self.blocks[0].window_size

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """Args: x (B, L, C) on this stage's grid; source (1, L, 1) or None. Returns: next stage's tokens."""
        mask = None if source is None else source_attention_mask(source, self.resolution, self.window_size)
        for block in self.blocks:
            x = block(x, self.resolution, mask)
        if self.downsample is not None:
            x, _ = self.downsample(x, self.resolution)
        return x


@MODELS.register_module()
class MixMIMTransformer(BaseBackbone):
    """MixMIM encoder; ``forward`` returns the average-pooled, normalised last stage.

    Args:
        arch: 'base', 'large', 'huge' (or b/l/h), 'test' (tiny, for CPU tests), or a dict with ``embed_dims``,
            ``depths``, ``num_heads``.
        mlp_ratio: MLP width / C.
        img_size: Input size the stage grids (and so the windows and the position table) are built for.
        patch_size: Patch side of the stem (4).
        in_channels: Image channels.
        window_size: Window side per stage; a window not smaller than its grid becomes global.
        qkv_bias: Bias in the qkv projections.
        drop_rate: Dropout after the position embedding and in the blocks.
        drop_path_rate: Stochastic depth, linear from 0 over all blocks (0.1 for fine-tuning MixMIM-B).
        attn_drop_rate: Attention dropout.
        norm_eps: LayerNorm epsilon.
        with_cp: Activation checkpointing per block (memory for compute).
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.
    """

    feature_layout = 'tokens'
    arch_zoo = {
        **dict.fromkeys(['b', 'base'], dict(embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32])),
        **dict.fromkeys(['l', 'large'], dict(embed_dims=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48])),
        **dict.fromkeys(['h', 'huge'], dict(embed_dims=352, depths=[2, 2, 18, 2], num_heads=[11, 22, 44, 88])),
        'test': dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 2, 2]),
    }

    def __init__(
        self,
        arch: str | dict = 'base',
        mlp_ratio: float = 4.0,
        img_size: int = 224,
        patch_size: int = 4,
        in_channels: int = 3,
        window_size: Sequence[int] = (14, 14, 14, 7),
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        norm_eps: float = 1e-5,
        with_cp: bool = False,
        init_cfg: dict | list | None = None,
    ):
        super().__init__(init_cfg=init_cfg)
        arch = self.resolve_arch(arch, self.arch_zoo, {'embed_dims', 'depths', 'num_heads'}, 'MixMIM')
        self.embed_dims = arch['embed_dims']
        self.depths, self.num_heads = list(arch['depths']), list(arch['num_heads'])
        if len(window_size) != len(self.depths):
            raise ValueError(f'window_size needs one entry per stage ({len(self.depths)}), got {list(window_size)}')
        self.out_indices = (len(self.depths) - 1,)
        self.patch_size = patch_size
        self.stage_channels = tuple(self.embed_dims * 2**i for i in range(len(self.depths)))
        self.stage_strides = tuple(patch_size * 2**i for i in range(len(self.depths)))
        self.site_channels, self.site_strides = self.stage_channels, self.stage_strides

        self.patch_embed = PatchEmbed(in_channels, self.embed_dims, patch_size, img_size, norm=True, norm_eps=norm_eps)
        self.patch_resolution = self.patch_embed.init_out_size
        num_patches = self.patch_resolution[0] * self.patch_resolution[1]
        # fixed sin-cos table (filled by init_weights, carried by checkpoints as in the references)
        self.absolute_pos_embed = nn.Parameter(torch.zeros(1, num_patches, self.embed_dims), requires_grad=False)
        self.drop_after_pos = nn.Dropout(drop_rate)

        dpr = torch.linspace(0, drop_path_rate, sum(self.depths)).tolist()
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(self.depths, self.num_heads, strict=True)):
            res = (self.patch_resolution[0] // 2**i, self.patch_resolution[1] // 2**i)
            self.layers.append(
                MixMIMLayer(
                    self.embed_dims * 2**i,
                    depth,
                    heads,
                    window_size[i],
                    res,
                    dpr[sum(self.depths[:i]) :],
                    downsample=i < len(self.depths) - 1,
                    with_cp=with_cp,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop_rate=drop_rate,
                    attn_drop_rate=attn_drop_rate,
                    norm_eps=norm_eps,
                )
            )
        self.norm = nn.LayerNorm(self.stage_channels[-1], eps=norm_eps)
        self._register_load_state_dict_pre_hook(self._adapt_checkpoint)

    # ------------------------------------------------------------------ init
    def init_random_weights(self) -> None:
        """The official init: xavier-uniform Linears with zero bias, unit LayerNorms, trunc-normal(0.02) bias tables,
        the sin-cos position table (mmpretrain's classifier backbone leaves it at zero, which only a loaded
        checkpoint repairs)."""
        table = build_2d_sincos_position_embedding(self.patch_resolution, self.embed_dims, cls_token=False)
        self.absolute_pos_embed.data.copy_(table)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, WindowMSA):
                trunc_normal_(m.relative_position_bias_table, std=0.02)

    def _adapt_checkpoint(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        """State-dict pre-hook for checkpoints of another input size (224 -> 384 fine-tuning, as the official code):
        bicubic resize of the relative-position bias tables and the position table; stale
        ``relative_position_index`` buffers are replaced by this model's."""
        own_state = self.state_dict()
        resized, _ = adapt_relative_position_tables(own_state, state_dict, prefix)
        resized = [key for key, _, _ in resized]
        key = prefix + 'absolute_pos_embed'
        if key in state_dict and state_dict[key].shape != own_state['absolute_pos_embed'].shape:
            side = int(round(state_dict[key].shape[1] ** 0.5))
            state_dict[key] = resize_pos_embed(state_dict[key], (side, side), self.patch_resolution, 'bicubic', 0)
            resized.append(key)
        if resized:
            MMLogger.get_current_instance().info(f"Resized to this model's grid and windows (bicubic): {resized}")

    # --------------------------------------------------------------- forward
    def forward_tokens(
        self,
        x: torch.Tensor,
        hooks: Mapping[int, SiteHook] | None = None,
        sources: Sequence[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        """The stem, the stages and the final norm.

        Args:
            x: Images (B, 3, H, W) of the size the model was built for.
            hooks: Per mask site (0: patch embeddings before the position table, l: stage l's input tokens).
            sources: Per stage, the (1, L_s, 1) source mask that blocks attention between tokens of two images
                (:func:`source_attention_mask`), or None for plain attention.

        Returns:
            (B, L_4, C_4) normalised last-stage tokens.
        """
        tokens, hw = self.patch_embed(x)  # (B, 3, H, W) -> (B, L_1, C_1)
        if hw != tuple(self.patch_resolution):
            raise ValueError(
                f'MixMIM built for a {self.patch_resolution[0]}x{self.patch_resolution[1]} patch grid (img_size) got '
                f'{hw[0]}x{hw[1]}; set img_size (and window_size) for this input size'
            )
        x = self.drop_after_pos(self.at_site(0, tokens, hw, hooks) + self.absolute_pos_embed)
        sources = sources if sources is not None else [None] * len(self.layers)
        for i, (layer, source) in enumerate(zip(self.layers, sources, strict=True)):
            if i > 0:
                x = self.at_site(i, x, layer.resolution, hooks)
            x = layer(x, source)
        return self.norm(x)

    def forward_stages(self, x: torch.Tensor, hooks: Mapping[int, SiteHook] | None = None) -> tuple[torch.Tensor]:
        """Args: x (B, 3, H, W). Returns: ``(features,)`` with features (B, C_4), the mean of the last-stage tokens."""
        return (self.forward_tokens(x, hooks).mean(dim=1),)

    # ------------------------------------------------------------- optimiser
    def get_layer_depth(self, param_name: str, prefix: str = '') -> tuple[int, int]:
        """Depth for layer-wise lr decay, the official MixMIM rule (``util/lr_decay.py``).

        Stem and position table 0; ``layers.s.blocks.b`` -> ``sum(depths[:s]) + b + 1``; a stage's patch merging
        -> ``sum(depths[:s+1]) + 1`` (with the next stage's first block); everything else, the final norm and the
        head included, -> ``sum(depths)``, so the head's lr is scaled by the decay rate once. mmpretrain instead
        puts patch merging at ``sum(depths[:s+1])`` and the head at scale 1.0 (see docs/mixmim.md).

        Returns:
            ``(depth, num_layers)`` with ``num_layers = sum(depths) + 2``, so that the constructor's
            ``rate ** (num_layers - depth - 1)`` equals the official ``rate ** (sum(depths) + 1 - depth)``.
        """
        total = sum(self.depths)
        num_layers = total + 2
        if not param_name.startswith(prefix):
            return total, num_layers
        name = param_name[len(prefix) :]
        if name.startswith(('patch_embed', 'absolute_pos_embed')):
            return 0, num_layers
        if name.startswith('layers.'):
            parts = name.split('.')
            s = int(parts[1])
            if parts[2] == 'downsample':
                return sum(self.depths[: s + 1]) + 1, num_layers
            return sum(self.depths[:s]) + int(parts[3]) + 1, num_layers
        return total, num_layers
