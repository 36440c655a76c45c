"""Swin Transformer (Liu et al. 2021) with mmpretrain 1.2.0's ``SwinTransformer`` state-dict keys.

Legend: ``B`` batch, ``H x W`` token grid of a stage, ``C`` stage width, ``w`` window side, ``N = w * w`` tokens per
window, ``nW`` windows per image, ``h`` heads.

Keys: ``patch_embed.projection/norm``, ``stages.{s}.blocks.{b}.norm1/norm2``,
``stages.{s}.blocks.{b}.attn.w_msa.{qkv,proj,relative_position_bias_table,relative_position_index}``,
``stages.{s}.blocks.{b}.ffn.layers.0.0/ffn.layers.1``, ``stages.{s}.downsample.norm/reduction``, ``norm{i}`` for
each out index, optional ``absolute_pos_embed``. Window attention runs through ``F.scaled_dot_product_attention`` with
the relative-position bias (and the shifted-window mask) as an additive ``attn_mask``.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from timm.layers import DropPath, trunc_normal_
from torch import nn

from mimlab.registry import MODELS

from ..layers import FFN, PatchEmbed, resize_pos_embed
from .base import BaseBackbone


def relative_position_index(w: int) -> torch.Tensor:
    """(N, N) index into the (2w-1)^2 bias table: ``(dy + w - 1) * (2w - 1) + (dx + w - 1)``."""
    ys, xs = torch.meshgrid(torch.arange(w), torch.arange(w), indexing='ij')
    coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :] + (w - 1)  # (2, N, N)
    return rel[0] * (2 * w - 1) + rel[1]


def resize_bias_table(table: torch.Tensor, dst_window: int) -> torch.Tensor:
    """Bicubic resize of a ((2w-1)^2, h) relative-position bias table to another window size."""
    src = int(round(table.shape[0] ** 0.5))
    dst = 2 * dst_window - 1
    grid = table.T.reshape(1, -1, src, src)  # (L, h) -> (1, h, 2w-1, 2w-1)
    grid = F.interpolate(grid.float(), size=(dst, dst), mode='bicubic', align_corners=False)
    return grid.reshape(-1, dst * dst).T.to(table.dtype)  # -> (L', h)


class WindowMSA(nn.Module):
    """Multi-head self-attention inside windows, with a learnable relative-position bias."""

    def __init__(self, embed_dims: int, window_size: int, num_heads: int, qkv_bias=True, attn_drop=0.0, proj_drop=0.0):
        super().__init__()
        self.window_size, self.num_heads = window_size, num_heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer('relative_position_index', relative_position_index(window_size))
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Args: x (B*nW, N, C); mask (nW, N, N) additive shift mask or None. Returns (B*nW, N, C)."""
        Bw, N, C = x.shape
        q, k, v = self.qkv(x).reshape(Bw, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]  # (N*N, h)
        bias = bias.view(N, N, -1).permute(2, 0, 1).unsqueeze(0)  # (1, h, N, N)
        if mask is not None:
            nW = mask.shape[0]
            bias = (bias + mask.unsqueeze(1)).repeat(Bw // nW, 1, 1, 1)  # (nW, h, N, N) -> (B*nW, h, N, N)
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.to(q.dtype), dropout_p=self.attn_drop if self.training else 0.0
        )
        x = x.transpose(1, 2).reshape(Bw, N, C)  # (B*nW, h, N, C/h) -> (B*nW, N, C)
        return self.proj_drop(self.proj(x))


def window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/w * W/w, w*w, C)."""
    B, H, W, C = x.shape
    x = x.view(B, H // w, w, W // w, w, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, C)


def window_reverse(windows: torch.Tensor, H: int, W: int, w: int) -> torch.Tensor:
    """(B * H/w * W/w, w*w, C) -> (B, H, W, C)."""
    C = windows.shape[-1]
    x = windows.view(-1, H // w, W // w, w, w, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, H, W, C)


def shift_mask(H: int, W: int, w: int, s: int, device) -> torch.Tensor:
    """(nW, N, N) additive mask (0 / -100) keeping attention inside the regions a cyclic shift glued together."""
    region = torch.zeros(1, H, W, 1, device=device)
    cuts = (slice(0, -w), slice(-w, -s), slice(-s, None))
    for i, (hs, ws) in enumerate((hs, ws) for hs in cuts for ws in cuts):
        region[:, hs, ws, :] = i
    ids = window_partition(region, w).squeeze(-1)  # (nW, N)
    diff = ids.unsqueeze(1) - ids.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class ShiftWindowMSA(nn.Module):
    """(Shifted-)window attention on a (B, H*W, C) token map; pads to a multiple of the window."""

    def __init__(self, embed_dims, num_heads, window_size, shift, qkv_bias, attn_drop, drop_path, pad_small_map):
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2 if shift else 0
        self.pad_small_map = pad_small_map
        self.w_msa = WindowMSA(embed_dims, window_size, num_heads, qkv_bias, attn_drop)
        self.drop = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        B, L, C = x.shape
        H, W = hw
        w, s = self.window_size, self.shift_size
        if min(H, W) == w and not self.pad_small_map:
            s = 0  # one window covers the map: nothing to shift
        elif min(H, W) < w and not self.pad_small_map:
            raise ValueError(f'feature map {H}x{W} is smaller than the window {w}; set pad_small_map=True')
        x = x.view(B, H, W, C)
        pad_r, pad_b = (w - W % w) % w, (w - H % w) % w
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))  # (B, Hp, Wp, C)
        Hp, Wp = x.shape[1:3]
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        mask = shift_mask(Hp, Wp, w, s, x.device) if s else None
        x = window_reverse(self.w_msa(window_partition(x, w), mask), Hp, Wp, w)
        if s:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        return self.drop(x[:, :H, :W].reshape(B, H * W, C))


class SwinBlock(nn.Module):
    def __init__(self, embed_dims, num_heads, window_size, shift, drop_path, qkv_bias, pad_small_map, norm_eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = ShiftWindowMSA(embed_dims, num_heads, window_size, shift, qkv_bias, 0.0, drop_path, pad_small_map)
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.ffn = FFN(embed_dims, 4 * embed_dims, drop_path_rate=drop_path)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), hw)
        return self.ffn(self.norm2(x), identity=x)


class PatchMerging(nn.Module):
    """2x2 neighbourhoods -> one token: (B, H*W, C) -> (B, H/2*W/2, 2C). Channel order of ``nn.Unfold`` (C-major,
    then the 2x2 offsets), as mmpretrain, so ``reduction`` weights transfer."""

    def __init__(self, in_channels: int, out_channels: int, norm_eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(4 * in_channels, eps=norm_eps)
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
        B, L, C = x.shape
        H, W = hw
        x = x.view(B, H, W, C).permute(0, 3, 1, 2)  # (B, C, H, W)
        x = F.pad(x, (0, W % 2, 0, H % 2))
        x = F.unfold(x, kernel_size=2, stride=2)  # (B, 4C, H/2 * W/2)
        out_hw = ((H + 1) // 2, (W + 1) // 2)
        return self.reduction(self.norm(x.transpose(1, 2))), out_hw


class SwinStage(nn.Module):
    def __init__(self, embed_dims, depth, num_heads, window_size, downsample, drop_paths, pad_small_map, norm_eps):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(embed_dims, num_heads, window_size, i % 2 == 1, drop_paths[i], True, pad_small_map, norm_eps)
            for i in range(depth)
        )
        self.downsample = PatchMerging(embed_dims, 2 * embed_dims, norm_eps) if downsample else None
        self.out_channels = 2 * embed_dims if downsample else embed_dims


@MODELS.register_module()
class SwinTransformer(BaseBackbone):
    """Hierarchical window-attention encoder.

    Args:
        arch: 'tiny', 'small', 'base', 'large' (or t/s/b/l), 'test', or a dict with ``embed_dims``, ``depths``,
            ``num_heads``.
        img_size: Nominal input size (grid of the absolute position table).
        patch_size: Patch side of the stem (4).
        window_size: Window side w (7 at 224 px, 6 at 192 px in SimMIM).
        out_indices: Stages whose normalised outputs (B, C_s, H_s, W_s) are returned.
        drop_path_rate: Stochastic depth, linear over all blocks.
        use_abs_pos_embed: Add a learnable absolute position table after the stem.
        pad_small_map: Pad maps smaller than a window (and keep shifting at the window size).
        norm_eps: LayerNorm epsilon (1e-5, torch's default, as mmpretrain's Swin).
        frozen_stages: Freeze the stem and stages up to this index (-1: none).
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.
    """

    arch_zoo = {
        **dict.fromkeys(['t', 'tiny'], dict(embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24])),
        **dict.fromkeys(['s', 'small'], dict(embed_dims=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24])),
        **dict.fromkeys(['b', 'base'], dict(embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32])),
        **dict.fromkeys(['l', 'large'], dict(embed_dims=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48])),
        'test': dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 2, 2]),
    }

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
        init_cfg=None,
    ):
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch.lower() not in self.arch_zoo:
                raise KeyError(f'unknown Swin arch {arch!r}; choose from {sorted(self.arch_zoo)} or pass a dict')
            arch = self.arch_zoo[arch.lower()]
        self.embed_dims = arch['embed_dims']
        self.depths, self.num_heads = list(arch['depths']), list(arch['num_heads'])
        self.window_size = window_size
        self.out_indices = tuple(i + len(self.depths) if i < 0 else i for i in out_indices)
        self.use_abs_pos_embed = use_abs_pos_embed
        self.interpolate_mode = interpolate_mode
        self.frozen_stages = frozen_stages

        self.patch_embed = PatchEmbed(in_channels, self.embed_dims, patch_size, img_size, norm=True, norm_eps=norm_eps)
        self.patch_resolution = self.patch_embed.init_out_size
        if use_abs_pos_embed:
            n = self.patch_resolution[0] * self.patch_resolution[1]
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, n, self.embed_dims))
        self._register_load_state_dict_pre_hook(self._adapt_checkpoint)
        self.drop_after_pos = nn.Dropout(drop_rate)

        dpr = torch.linspace(0, drop_path_rate, sum(self.depths)).tolist()
        self.stages = nn.ModuleList()
        widths = [self.embed_dims]
        for i, (depth, heads) in enumerate(zip(self.depths, self.num_heads)):
            stage = SwinStage(
                widths[-1], depth, heads, window_size, i < len(self.depths) - 1, dpr[:depth], pad_small_map, norm_eps
            )
            dpr = dpr[depth:]
            self.stages.append(stage)
            widths.append(stage.out_channels)
        self.num_features = widths[:-1]  # width of each stage's output before its downsampling
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i], eps=norm_eps))
        if frozen_stages >= 0:
            self._freeze_stages()

    # ------------------------------------------------------------------ init
    def init_weights(self) -> None:
        """timm/Swin init: trunc-normal(0.02) Linears and bias tables, zero biases, unit LayerNorms."""
        if getattr(self, '_is_init', False):
            return
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        if not any(isinstance(c, dict) and c.get('type') == 'Pretrained' for c in cfgs):
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
        super().init_weights()

    def _freeze_stages(self) -> None:
        modules = [self.patch_embed, *self.stages[: self.frozen_stages + 1]]
        modules += [getattr(self, f'norm{i}') for i in self.out_indices if i <= self.frozen_stages]
        for m in modules:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.frozen_stages >= 0:
            self._freeze_stages()
        return self

    # --------------------------------------------------------------- loading
    def _adapt_checkpoint(self, state_dict, prefix, *args, **kwargs) -> None:
        """Load checkpoints of another window size or resolution.

        Relative-position bias tables of another window are resized (bicubic on the (2w-1)^2 grid) and the
        checkpoint's ``relative_position_index`` buffers, which belong to the old window, are dropped in favour of this
        model's; an absolute position table of another grid is interpolated.
        """
        logger = MMLogger.get_current_instance()
        own = self.state_dict()
        for key, value in own.items():
            ckpt_key = prefix + key
            if key.endswith('relative_position_bias_table') and ckpt_key in state_dict:
                if state_dict[ckpt_key].shape != value.shape:
                    logger.info(f'Resize {ckpt_key} from {tuple(state_dict[ckpt_key].shape)} to {tuple(value.shape)}')
                    state_dict[ckpt_key] = resize_bias_table(state_dict[ckpt_key], self.window_size)
            elif key.endswith('relative_position_index') and ckpt_key in state_dict:
                if state_dict[ckpt_key].shape != value.shape:
                    logger.info(f'Drop {ckpt_key} of another window size; it is rebuilt for window {self.window_size}')
                    state_dict[ckpt_key] = value
        name = prefix + 'absolute_pos_embed'
        if self.use_abs_pos_embed and name in state_dict and state_dict[name].shape != self.absolute_pos_embed.shape:
            side = int(round(state_dict[name].shape[1] ** 0.5))
            state_dict[name] = resize_pos_embed(
                state_dict[name], (side, side), self.patch_resolution, self.interpolate_mode, 0
            )

    # --------------------------------------------------------------- forward
    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Stem: (B, 3, H, W) -> (B, H/p * W/p, C)."""
        x, hw = self.patch_embed(x)
        if self.use_abs_pos_embed:
            x = x + resize_pos_embed(self.absolute_pos_embed, self.patch_resolution, hw, self.interpolate_mode, 0)
        return self.drop_after_pos(x), hw

    def forward_stages(self, x: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        outs = []
        for i, stage in enumerate(self.stages):
            for block in stage.blocks:
                x = block(x, hw)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x)
                outs.append(out.view(-1, *hw, self.num_features[i]).permute(0, 3, 1, 2).contiguous())
            if stage.downsample is not None:
                x, hw = stage.downsample(x, hw)
        return tuple(outs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Args: x (B, 3, H, W). Returns: per out index (B, C_i, H_i, W_i)."""
        return self.forward_stages(*self.embed(x))

    # -------------------------------------------------------------- contract
    def no_weight_decay(self) -> set[str]:
        names = {n for n, _ in self.named_parameters() if n.endswith('relative_position_bias_table')}
        return names | ({'absolute_pos_embed'} if self.use_abs_pos_embed else set())

    def get_layer_depth(self, param_name: str, prefix: str = '') -> tuple[int, int]:
        """mmpretrain's rule: stem 0; ``stages.s.blocks.b`` -> sum(depths[:s]) + b + 1; a stage's downsampling ->
        sum(depths[:s+1]); everything else (final norms, absolute pos embed, heads) -> num_layers - 1."""
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
