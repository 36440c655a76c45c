"""Swin Transformer (Liu et al. 2021) with mmpretrain 1.2.0's ``SwinTransformer`` state-dict keys.

Legend: ``B`` batch, ``H x W`` token grid of a stage (``Hp x Wp`` once padded to whole windows), ``C`` stage width,
``L = H * W`` tokens, ``w`` window side, ``s`` shift, ``N = w * w`` tokens per window, ``nW`` windows per image,
``h`` heads, ``d = C / h`` head width.

Keys: ``patch_embed.projection/norm``, ``stages.{s}.blocks.{b}.norm1/norm2``,
``stages.{s}.blocks.{b}.attn.w_msa.{qkv,proj,relative_position_bias_table,relative_position_index}``,
``stages.{s}.blocks.{b}.ffn.layers.0.0/ffn.layers.1``, ``stages.{s}.downsample.norm/reduction``, ``norm{i}`` for
each out index, optional ``absolute_pos_embed``. Window attention runs through ``F.scaled_dot_product_attention``
with the relative-position bias (plus the shifted-window mask) as an additive ``attn_mask``.
"""

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from timm.layers import DropPath, trunc_normal_
from torch import nn

from mimlab.registry import MODELS

from ..layers import FFN, PatchEmbed, checkpoint_module, resize_pos_embed
from .base import BaseBackbone, SiteHook

# --------------------------------------------------------------------------------------------- window helpers


def relative_position_index(w: int) -> torch.Tensor:
    """Index of each (query, key) pair of a w x w window into the ((2w-1)^2, h) bias table.

    Returns:
        (N, N) long tensor, ``(dy + w - 1) * (2w - 1) + (dx + w - 1)`` for the offset (dy, dx) of query minus key;
        equal to mmpretrain's ``relative_position_index`` buffer.
    """
    ys, xs = torch.meshgrid(torch.arange(w), torch.arange(w), indexing='ij')
    coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :] + (w - 1)  # (2, N, N), offsets shifted to [0, 2w-2]
    return rel[0] * (2 * w - 1) + rel[1]


def resize_bias_table(table: torch.Tensor, dst_window: int) -> torch.Tensor:
    """Bicubic resize of a relative-position bias table to another window size.

    This is the official SimMIM fine-tuning rule (``F.interpolate`` on the (2w-1) x (2w-1) offset grid).
    mmpretrain instead resamples on a geometric-progression grid with scipy; the two differ slightly in value.

    Args:
        table: ((2w-1)^2, h).
        dst_window: New window side w'.

    Returns:
        ((2w'-1)^2, h), in the dtype of ``table``.
    """
    src = int(round(table.shape[0] ** 0.5))
    dst = 2 * dst_window - 1
    grid = table.T.reshape(1, -1, src, src)  # ((2w-1)^2, h) -> (1, h, 2w-1, 2w-1)
    grid = F.interpolate(grid.float(), size=(dst, dst), mode='bicubic', align_corners=False)
    return grid.reshape(-1, dst * dst).T.to(table.dtype)  # (1, h, 2w'-1, 2w'-1) -> ((2w'-1)^2, h)


def adapt_relative_position_tables(own_state: dict, state_dict: dict, prefix: str) -> tuple[list, list]:
    """Fit a checkpoint's window-attention tables to a model built for other window sizes, in place.

    - ``relative_position_bias_table`` of another window: bicubic resize (:func:`resize_bias_table`) to the model's
      window, read from the model's own table shape (so each stage may have its own window).
    - ``relative_position_index`` is a function of the window size, never learned: a checkpoint's buffer that differs
      from the model's is replaced by the model's, and so is a missing one whose bias table is present.

    Args:
        own_state: The model's ``state_dict()`` (keys without ``prefix``).
        state_dict: The checkpoint being loaded (keys with ``prefix``), changed in place.
        prefix: The module's prefix in ``state_dict``.

    Returns:
        (resized, rebuilt): ``(key, old shape, new shape)`` of each resized table; keys of replaced index buffers.
    """
    resized, rebuilt = [], []
    for key, own in own_state.items():
        ckpt_key = prefix + key
        if key.endswith('relative_position_bias_table') and ckpt_key in state_dict:
            theirs = state_dict[ckpt_key]
            if theirs.shape != own.shape:
                window = int(round((own.shape[0] ** 0.5 + 1) / 2))  # ((2w-1)^2, h)
                resized.append((ckpt_key, tuple(theirs.shape), tuple(own.shape)))
                state_dict[ckpt_key] = resize_bias_table(theirs, window)
        elif key.endswith('relative_position_index'):
            table_key = ckpt_key[: -len('index')] + 'bias_table'
            stale = ckpt_key in state_dict and not torch.equal(state_dict[ckpt_key].to(own.device), own)
            if stale or (ckpt_key not in state_dict and table_key in state_dict):
                rebuilt.append(ckpt_key)
                state_dict[ckpt_key] = own.clone()
    return resized, rebuilt


def window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """Cut a padded map into windows: (B, Hp, Wp, C) -> (B * nW, N, C), windows in raster order."""
    B, H, W, C = x.shape
    x = x.view(B, H // w, w, W // w, w, C).permute(0, 1, 3, 2, 4, 5)  # -> (B, Hp/w, Wp/w, w, w, C)
    return x.reshape(-1, w * w, C)  # -> (B * nW, N, C)


def window_reverse(windows: torch.Tensor, H: int, W: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, N, C) -> (B, Hp, Wp, C)."""
    C = windows.shape[-1]
    x = windows.view(-1, H // w, W // w, w, w, C).permute(0, 1, 3, 2, 4, 5)  # -> (B, Hp/w, w, Wp/w, w, C)
    return x.reshape(-1, H, W, C)  # -> (B, Hp, Wp, C)


def shift_mask(H: int, W: int, w: int, s: int, device: torch.device) -> torch.Tensor:
    """Additive mask keeping attention inside the regions that the cyclic shift glued into one window.

    Returns:
        (nW, N, N): 0 within a region, -100 across regions (the value of the original Swin and mmpretrain).
    """
    region = torch.zeros(1, H, W, 1, device=device)
    cuts = (slice(0, -w), slice(-w, -s), slice(-s, None))
    for i, (hs, ws) in enumerate((hs, ws) for hs in cuts for ws in cuts):
        region[:, hs, ws, :] = i
    ids = window_partition(region, w).squeeze(-1)  # (1, Hp, Wp, 1) -> (nW, N)
    diff = ids.unsqueeze(1) - ids.unsqueeze(2)  # (nW, N, N)
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


# ------------------------------------------------------------------------------------------------- layers


class WindowMSA(nn.Module):
    """Multi-head self-attention inside each window, with a learnable relative-position bias.

    Args:
        embed_dims: Width C.
        window_size: Window side w.
        num_heads: Heads h.
        qkv_bias: Bias in the fused qkv projection.
        attn_drop: Dropout on attention weights (training only).
        proj_drop: Dropout after the output projection.
    """

    def __init__(
        self,
        embed_dims: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        self.window_size, self.num_heads = window_size, num_heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer('relative_position_index', relative_position_index(window_size))
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Args:
            x: (B * nW, N, C) window tokens.
            mask: (nW, N, N) additive shift mask, or None for unshifted windows.

        Returns:
            (B * nW, N, C).
        """
        Bw, N, C = x.shape
        h, d = self.num_heads, C // self.num_heads
        qkv = self.qkv(x).reshape(Bw, N, 3, h, d).permute(2, 0, 3, 1, 4)  # (B*nW, N, 3C) -> (3, B*nW, h, N, d)
        q, k, v = qkv.unbind(0)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]  # (N*N, h)
        bias = bias.view(N, N, h).permute(2, 0, 1)  # (N*N, h) -> (h, N, N)
        dropout_p = self.attn_drop if self.training else 0.0
        if mask is None:  # one bias for every window: broadcast over B*nW
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0).to(q.dtype), dropout_p=dropout_p)
        else:
            # Each window has its own shift mask. Folding the windows into the head axis lets one (nW*h, N, N) mask
            # broadcast over the batch instead of materialising a (B*nW, h, N, N) copy.
            nW = mask.shape[0]
            bias = (bias.unsqueeze(0) + mask.unsqueeze(1)).reshape(1, nW * h, N, N)  # (nW, h, N, N) -> (1, nW*h, N, N)
            q, k, v = (t.reshape(Bw // nW, nW * h, N, d) for t in (q, k, v))  # (B*nW, h, N, d) -> (B, nW*h, N, d)
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout_p)
            x = x.reshape(Bw, h, N, d)  # (B, nW*h, N, d) -> (B*nW, h, N, d)
        x = x.transpose(1, 2).reshape(Bw, N, C)  # (B*nW, h, N, d) -> (B*nW, N, C)
        return self.proj_drop(self.proj(x))


class ShiftWindowMSA(nn.Module):
    """(Shifted-)window attention on a token map, padding it to whole windows.

    Args:
        embed_dims: Width C.
        num_heads: Heads h.
        window_size: Window side w.
        shift: Shift the windows by w // 2 (every second block).
        qkv_bias: Bias in the qkv projection.
        attn_drop: Attention dropout.
        drop_path: Stochastic depth on this branch.
        pad_small_map: Allow maps smaller than a window (padded, still shifted). Without it a map equal to the window
            is not shifted (as the original Swin) and a smaller one is an error.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        window_size: int,
        shift: bool,
        qkv_bias: bool,
        attn_drop: float,
        drop_path: float,
        pad_small_map: bool,
    ):
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2 if shift else 0
        self.pad_small_map = pad_small_map
        self.w_msa = WindowMSA(embed_dims, window_size, num_heads, qkv_bias, attn_drop)
        self.drop = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """Args: x (B, L, C) with L = H * W; hw = (H, W). Returns: (B, L, C)."""
        B, L, C = x.shape
        H, W = hw
        w, s = self.window_size, self.shift_size
        if min(H, W) == w and not self.pad_small_map:
            s = 0  # one window covers the map: nothing to shift
        elif min(H, W) < w and not self.pad_small_map:
            raise ValueError(f'feature map {H}x{W} is smaller than the window {w}; set pad_small_map=True')
        x = x.view(B, H, W, C)  # (B, L, C) -> (B, H, W, C)
        x = F.pad(x, (0, 0, 0, (w - W % w) % w, 0, (w - H % w) % w))  # -> (B, Hp, Wp, C)
        Hp, Wp = x.shape[1:3]
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        mask = shift_mask(Hp, Wp, w, s, x.device) if s else None
        x = window_reverse(self.w_msa(window_partition(x, w), mask), Hp, Wp, w)  # (B, Hp, Wp, C), via windows
        if s:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        return self.drop(x[:, :H, :W].reshape(B, L, C))  # (B, Hp, Wp, C) -> (B, L, C)


class SwinBlock(nn.Module):
    """Pre-norm block: (shifted-)window attention then a 4x MLP, each with a residual and stochastic depth."""

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        window_size: int,
        shift: bool,
        drop_path: float,
        qkv_bias: bool,
        pad_small_map: bool,
        norm_eps: float,
        with_cp: bool = False,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = ShiftWindowMSA(embed_dims, num_heads, window_size, shift, qkv_bias, 0.0, drop_path, pad_small_map)
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.ffn = FFN(embed_dims, 4 * embed_dims, drop_path_rate=drop_path)
        if with_cp:  # the backward pass recomputes the block from its input
            checkpoint_module(self)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """(B, L, C) -> (B, L, C)."""
        x = x + self.attn(self.norm1(x), hw)
        return self.ffn(self.norm2(x), identity=x)


class PatchMerging(nn.Module):
    """Each 2x2 neighbourhood becomes one token of twice the width: (B, H*W, C) -> (B, ceil(H/2)*ceil(W/2), 2C).

    The 4C features are in ``nn.Unfold`` order (channel-major, then the 2x2 offsets (0,0), (0,1), (1,0), (1,1)), as
    mmcv's ``PatchMerging`` that mmpretrain uses, so ``reduction`` weights transfer; timm / the original Swin
    concatenate offset-major ((0,0), (1,0), (0,1), (1,1)) instead. Odd maps are zero-padded at the bottom/right.

    Args:
        in_channels: C.
        out_channels: Output width (2C).
        norm_eps: LayerNorm epsilon.
    """

    def __init__(self, in_channels: int, out_channels: int, norm_eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(4 * in_channels, eps=norm_eps)
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
        B, L, C = x.shape
        H, W = hw
        x = x.view(B, H, W, C).permute(0, 3, 1, 2)  # (B, L, C) -> (B, C, H, W)
        x = F.pad(x, (0, W % 2, 0, H % 2))
        x = F.unfold(x, kernel_size=2, stride=2).transpose(1, 2)  # -> (B, 4C, L/4) -> (B, L/4, 4C)
        return self.reduction(self.norm(x)), ((H + 1) // 2, (W + 1) // 2)


class SwinStage(nn.Module):
    """``depth`` blocks alternating plain and shifted windows, then (except in the last stage) patch merging."""

    def __init__(
        self,
        embed_dims: int,
        depth: int,
        num_heads: int,
        window_size: int,
        downsample: bool,
        drop_paths: Sequence[float],
        pad_small_map: bool,
        norm_eps: float,
        with_cp: bool = False,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(
                embed_dims, num_heads, window_size, i % 2 == 1, drop_paths[i], True, pad_small_map, norm_eps, with_cp
            )
            for i in range(depth)
        )
        self.downsample = PatchMerging(embed_dims, 2 * embed_dims, norm_eps) if downsample else None
        self.out_channels = 2 * embed_dims if downsample else embed_dims


# ---------------------------------------------------------------------------------------------- backbone


@MODELS.register_module()
class SwinTransformer(BaseBackbone):
    """Hierarchical window-attention encoder with four stages of stride 4, 8, 16, 32.

    Args:
        arch: 'tiny', 'small', 'base', 'large' (or t/s/b/l), 'test' (tiny, for CPU tests), or a dict with
            ``embed_dims``, ``depths``, ``num_heads``.
        img_size: Nominal input size (the grid of the absolute position table).
        patch_size: Patch side p of the stem (4).
        in_channels: Image channels.
        window_size: Window side w (7 at 224 px; SimMIM pretrains with 6 at 192 px).
        out_indices: Stages whose normalised outputs (B, C_i, H_i, W_i) are returned; negative counts from the end.
        drop_rate: Dropout after the (position-)embedding.
        drop_path_rate: Stochastic depth, linear from 0 over all blocks.
        use_abs_pos_embed: Add a learnable absolute position table after the stem.
        pad_small_map: Pad maps smaller than a window (Swin-L w12 at 192 px needs it for the last 6x6 stage).
        norm_eps: LayerNorm epsilon (1e-5, torch's default, as mmpretrain's Swin).
        frozen_stages: Freeze the stem and stages 0..frozen_stages with their out norms (-1: nothing).
        interpolate_mode: How the absolute position table is resized for other grids.
        with_cp: Activation checkpointing in every block (memory for compute; mmpretrain's argument of that name).
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.
    """

    arch_zoo = {
        **dict.fromkeys(['t', 'tiny'], dict(embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24])),
        **dict.fromkeys(['s', 'small'], dict(embed_dims=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24])),
        **dict.fromkeys(['b', 'base'], dict(embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32])),
        **dict.fromkeys(['l', 'large'], dict(embed_dims=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48])),
        'test': dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 2, 2]),
    }
    feature_layout = 'tokens'
    # state-dict version recorded in checkpoints: mmpretrain's Swin renames legacy keys of versions < 3 on load
    _version = 3

    def __init__(
        self,
        arch: str | dict = 'tiny',
        img_size: int = 224,
        patch_size: int = 4,
        in_channels: int = 3,
        window_size: int = 7,
        out_indices: Sequence[int] = (3,),
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        use_abs_pos_embed: bool = False,
        pad_small_map: bool = False,
        norm_eps: float = 1e-5,
        frozen_stages: int = -1,
        interpolate_mode: str = 'bicubic',
        with_cp: bool = False,
        init_cfg: dict | list | None = None,
    ):
        super().__init__(init_cfg=init_cfg)
        arch = self.resolve_arch(arch, self.arch_zoo, {'embed_dims', 'depths', 'num_heads'}, 'Swin')
        self.embed_dims = arch['embed_dims']
        self.depths, self.num_heads = list(arch['depths']), list(arch['num_heads'])
        self.window_size = window_size
        self.out_indices = self.resolve_out_indices(out_indices, len(self.depths))
        self.use_abs_pos_embed = use_abs_pos_embed
        self.interpolate_mode = interpolate_mode
        self.frozen_stages = frozen_stages

        self.patch_embed = PatchEmbed(in_channels, self.embed_dims, patch_size, img_size, norm=True, norm_eps=norm_eps)
        self.patch_resolution = self.patch_embed.init_out_size
        if use_abs_pos_embed:
            num_patches = self.patch_resolution[0] * self.patch_resolution[1]
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, num_patches, self.embed_dims))
        self._register_load_state_dict_pre_hook(self._adapt_checkpoint)
        self.drop_after_pos = nn.Dropout(drop_rate)

        dpr = torch.linspace(0, drop_path_rate, sum(self.depths)).tolist()
        self.stages = nn.ModuleList()
        widths = [self.embed_dims]
        for i, (depth, heads) in enumerate(zip(self.depths, self.num_heads, strict=True)):
            downsample = i < len(self.depths) - 1
            stage = SwinStage(
                widths[-1], depth, heads, window_size, downsample, dpr[:depth], pad_small_map, norm_eps, with_cp
            )
            dpr = dpr[depth:]
            self.stages.append(stage)
            widths.append(stage.out_channels)
        self.stage_channels = tuple(widths[:-1])  # width of each stage's output, before its patch merging
        self.stage_strides = tuple(patch_size * 2**i for i in range(len(self.depths)))
        self.site_channels, self.site_strides = self.stage_channels, self.stage_strides
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.stage_channels[i], eps=norm_eps))
        if frozen_stages >= 0:
            self._freeze_stages()

    # ------------------------------------------------------------------ init
    def init_random_weights(self) -> None:
        """trunc-normal(0.02) Linears, bias tables and position table, zero biases, unit LayerNorms (the patch conv
        keeps torch's default, as mmpretrain)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, WindowMSA):
                trunc_normal_(m.relative_position_bias_table, std=0.02)
        if self.use_abs_pos_embed:
            trunc_normal_(self.absolute_pos_embed, std=0.02)

    def _freeze_stages(self) -> None:
        modules = [self.patch_embed, *self.stages[: self.frozen_stages + 1]]
        modules += [getattr(self, f'norm{i}') for i in self.out_indices if i <= self.frozen_stages]
        self.freeze(modules)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.frozen_stages >= 0:
            self._freeze_stages()
        return self

    # --------------------------------------------------------------- loading
    def _adapt_checkpoint(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        """State-dict pre-hook: load checkpoints of another window size or resolution.

        - ``relative_position_bias_table`` of another window: bicubic resize on the (2w-1)^2 grid.
        - ``relative_position_index`` is a function of the window size, never learned: a checkpoint's buffer that
          differs from this model's (another window) is dropped and this model's rebuilt one is used, so strict
          loading works. A block whose bias table is in the checkpoint but whose index is not gets it too.
        - ``absolute_pos_embed`` of another grid: interpolated with ``interpolate_mode``.
        """
        logger = MMLogger.get_current_instance()
        resized, rebuilt = adapt_relative_position_tables(self.state_dict(), state_dict, prefix)
        if resized:
            logger.info(
                f'Resized {len(resized)} relative_position_bias_table(s) to window {self.window_size} (bicubic), '
                + ', '.join(f'{k}: {a} -> {b}' for k, a, b in resized)
            )
        if rebuilt:
            logger.info(
                f'Dropped {len(rebuilt)} stale relative_position_index buffer(s) of the checkpoint and rebuilt them '
                f'for window {self.window_size}: ' + ', '.join(rebuilt)
            )
        name = prefix + 'absolute_pos_embed'
        if self.use_abs_pos_embed and name in state_dict and state_dict[name].shape != self.absolute_pos_embed.shape:
            side = int(round(state_dict[name].shape[1] ** 0.5))
            logger.info(
                f'Resize {name} from {tuple(state_dict[name].shape)} to {tuple(self.absolute_pos_embed.shape)} '
                f'({self.interpolate_mode}).'
            )
            state_dict[name] = resize_pos_embed(
                state_dict[name], (side, side), self.patch_resolution, self.interpolate_mode, 0
            )

    # --------------------------------------------------------------- forward
    def add_position(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """Patch tokens (B, L, C) + the absolute position table resized to ``hw`` (if any), then dropout."""
        if self.use_abs_pos_embed:
            x = x + resize_pos_embed(self.absolute_pos_embed, self.patch_resolution, hw, self.interpolate_mode, 0)
        return self.drop_after_pos(x)

    def forward_stages(self, x: torch.Tensor, hooks: Mapping[int, SiteHook] | None = None) -> tuple[torch.Tensor, ...]:
        """Args: x (B, 3, H, W); hooks: per mask site (0: patch embeddings, l: stage l's input tokens).

        Returns: per out index (B, C_i, H/(4*2^i), W/(4*2^i)).
        """
        x, hw = self.patch_embed(x)  # (B, 3, H, W) -> (B, L, C)
        x = self.add_position(self.at_site(0, x, hw, hooks), hw)
        outs = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.at_site(i, x, hw, hooks)
            for block in stage.blocks:
                x = block(x, hw)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x)
                outs.append(out.view(-1, *hw, self.stage_channels[i]).permute(0, 3, 1, 2).contiguous())  # (B,C,H,W)
            if stage.downsample is not None:
                x, hw = stage.downsample(x, hw)
        return tuple(outs)

    # -------------------------------------------------------------- contract
    def no_weight_decay(self) -> set[str]:
        names = {n for n, _ in self.named_parameters() if n.endswith('relative_position_bias_table')}
        return names | ({'absolute_pos_embed'} if self.use_abs_pos_embed else set())

    def get_layer_depth(self, param_name: str, prefix: str = '') -> tuple[int, int]:
        """Depth for layer-wise lr decay, mmpretrain's rule.

        Stem 0; ``stages.s.blocks.b`` -> ``sum(depths[:s]) + b + 1``; a stage's patch merging -> ``sum(depths[:s+1])``
        (its last block's depth); everything else (``norm{i}``, ``absolute_pos_embed``, heads) -> ``num_layers - 1``.
        SimMIM's ``mask_token`` goes with the stem (mmselfsup's rule; mmpretrain leaves it at the top).

        Returns:
            ``(depth, num_layers)`` with ``num_layers = sum(depths) + 2`` (26 for Swin-B).
        """
        num_layers = sum(self.depths) + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix) :]
        if name.startswith(('patch_embed', 'mask_token')):
            return 0, num_layers
        if name.startswith('stages'):
            parts = name.split('.')
            s = int(parts[1])
            if parts[2] == 'blocks':
                return sum(self.depths[:s]) + int(parts[3]) + 1, num_layers
            return sum(self.depths[: s + 1]), num_layers
        return num_layers - 1, num_layers
