"""Transformer building blocks with mmpretrain 1.2.0's state-dict names.

Legend: ``B`` batch, ``N`` tokens, ``D`` width (``embed_dims``), ``H`` heads, ``Dh = D / H``.

Key names (``ln1``, ``attn.qkv``, ``attn.proj``, ``attn.gamma1.weight``, ``ln2``, ``ffn.layers.0.0``,
``ffn.layers.1``, ``ffn.gamma2.weight``) equal mmpretrain's ``TransformerEncoderLayer`` so checkpoints move across
unchanged. Attention runs through ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels on GPU).
"""

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from .checkpointing import checkpoint_module


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, N, D) tokens, (B, M) positions -> (B, M, D)."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class LayerScale(nn.Module):
    """Per-channel learnable scale (CaiT). The parameter is named ``weight`` as in mmpretrain."""

    def __init__(self, dim: int, init_value: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


def beit_relative_position_index(hw: tuple[int, int]) -> torch.Tensor:
    """Index into a BEiT relative-position bias table for a cls token followed by an ``h x w`` patch grid.

    The table has ``(2h-1)(2w-1)`` rows for patch-to-patch offsets plus 3 for cls-to-patch, patch-to-cls and
    cls-to-cls (BEiT, SimMIM's ViT, mmselfsup's and openmixup's ``MultiheadAttentionWithRPE``).

    Returns:
        (1 + h*w, 1 + h*w) long tensor; patch pairs ``(dy + h - 1) * (2w - 1) + (dx + w - 1)`` for the offset
        (dy, dx) of query minus key.
    """
    h, w = hw
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, h*w)
    rel = coords[:, :, None] - coords[:, None, :]  # (2, L, L)
    n = (2 * h - 1) * (2 * w - 1)
    index = torch.empty(h * w + 1, h * w + 1, dtype=torch.long)
    index[1:, 1:] = (rel[0] + h - 1) * (2 * w - 1) + (rel[1] + w - 1)
    index[0, :] = n  # cls -> patch
    index[:, 0] = n + 1  # patch -> cls
    index[0, 0] = n + 2  # cls -> cls
    return index


class MultiheadAttention(nn.Module):
    """Self-attention with a fused ``qkv`` projection.

    Args:
        embed_dims: Token width D.
        num_heads: Number of heads H.
        qkv_bias: Add a bias to the qkv projection.
        attn_drop: Dropout on attention weights (training only).
        proj_drop: Dropout after the output projection.
        drop_path_rate: Stochastic-depth rate applied to this branch's output.
        layer_scale_init_value: If > 0, a :class:`LayerScale` ``gamma1`` scales the output.
        rel_pos_grid: Patch grid (h, w) of a BEiT-style relative position bias (``relative_position_bias_table``
            of ``(2h-1)(2w-1) + 3`` rows per head, added to the attention logits); the input is then always the
            cls token followed by the h*w patches. None: no bias.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 0.0,
        rel_pos_grid: tuple[int, int] | None = None,
    ):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        self.gamma1 = LayerScale(embed_dims, layer_scale_init_value) if layer_scale_init_value > 0 else nn.Identity()
        self.out_drop = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.rel_pos_grid = tuple(rel_pos_grid) if rel_pos_grid is not None else None
        if self.rel_pos_grid is not None:
            h, w = self.rel_pos_grid
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * h - 1) * (2 * w - 1) + 3, num_heads))
            self.register_buffer('relative_position_index', beit_relative_position_index(self.rel_pos_grid))

    def relative_position_bias(self) -> torch.Tensor:
        """(H, N, N) additive logits bias, N = 1 + h*w."""
        n = self.relative_position_index.shape[0]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]  # (N*N, H)
        return bias.view(n, n, -1).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, query_index: torch.Tensor | None = None) -> torch.Tensor:
        """Args: x (B, N, D); query_index (B, M) token positions whose outputs are wanted (every token attends to
        all N keys; the query projection, the attention rows and the output projection run for the M only).
        Returns: (B, N, D), or (B, M, D) with ``query_index``."""
        B, N, D = x.shape
        if query_index is None:
            qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dims)  # (B, N, 3D) -> (B, N, 3, H, Dh)
            # unbind dim 2: the backward stacks the three gradients straight into qkv's layout (one copy, not two)
            q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))  # 3 x (B, H, N, Dh) views
        else:
            w, b = self.qkv.weight, self.qkv.bias
            kv = F.linear(x, w[D:], None if b is None else b[D:])  # (B, N, 2D)
            k, v = (t.transpose(1, 2) for t in kv.reshape(B, N, 2, self.num_heads, self.head_dims).unbind(2))
            q = F.linear(gather_tokens(x, query_index), w[:D], None if b is None else b[:D])  # (B, M, D)
            q = q.reshape(B, -1, self.num_heads, self.head_dims).transpose(1, 2)  # (B, H, M, Dh)
        bias = None
        if self.rel_pos_grid is not None:
            if N != self.relative_position_index.shape[0]:
                raise ValueError(
                    f'relative position bias built for 1 + {self.rel_pos_grid[0]}x{self.rel_pos_grid[1]} tokens, '
                    f'got {N}: it needs the cls token and every patch (not a masked subset, not another size)'
                )
            bias = self.relative_position_bias().to(q.dtype)  # (H, N, N)
            if query_index is None:
                bias = bias.unsqueeze(0)  # (1, H, N, N), broadcast over B
            else:
                bias = bias[:, query_index].transpose(0, 1)  # (H, B, M, N) -> (B, H, M, N)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=self.attn_drop if self.training else 0.0)
        x = x.transpose(1, 2).reshape(B, -1, D)  # (B, H, N or M, Dh) -> (B, N or M, D)
        return self.out_drop(self.gamma1(self.proj_drop(self.proj(x))))


class FFN(nn.Module):
    """Two-layer MLP. ``layers.0`` is ``Sequential(Linear, GELU, Dropout)`` and ``layers.1`` the output Linear, the
    nesting mmcv's ``FFN`` gives, so keys read ``ffn.layers.0.0.weight`` / ``ffn.layers.1.weight``."""

    def __init__(
        self,
        embed_dims: int,
        feedforward_channels: int,
        ffn_drop: float = 0.0,
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 0.0,
    ):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(embed_dims, feedforward_channels), nn.GELU(), nn.Dropout(ffn_drop)),
            nn.Linear(feedforward_channels, embed_dims),
            nn.Dropout(ffn_drop),
        )
        self.gamma2 = LayerScale(embed_dims, layer_scale_init_value) if layer_scale_init_value > 0 else nn.Identity()
        self.dropout_layer = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        return identity + self.dropout_layer(self.gamma2(self.layers(x)))


class TransformerEncoderLayer(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln1(x))`` then ``x + ffn(ln2(x))``.

    Args:
        embed_dims: Token width D.
        num_heads: Attention heads.
        feedforward_channels: Hidden width of the MLP.
        layer_scale_init_value: LayerScale init (0 disables it).
        drop_rate: Dropout after attention projection and in the MLP.
        attn_drop_rate: Dropout on attention weights.
        drop_path_rate: Stochastic depth of both residual branches.
        qkv_bias: Bias in the qkv projection.
        norm_eps: LayerNorm epsilon (1e-6 in every MIM recipe).
        rel_pos_grid: Patch grid of a BEiT-style relative position bias in the attention (None: none).
        with_cp: Activation checkpointing: keep only the block's input for the backward pass and recompute the
            rest there (less memory for ~1/3 more compute; dropout and stochastic depth redraw the same numbers).
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        feedforward_channels: int,
        layer_scale_init_value: float = 0.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        rel_pos_grid: tuple[int, int] | None = None,
        with_cp: bool = False,
    ):
        super().__init__()
        self.ln1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = MultiheadAttention(
            embed_dims,
            num_heads,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop_rate,
            proj_drop=drop_rate,
            drop_path_rate=drop_path_rate,
            layer_scale_init_value=layer_scale_init_value,
            rel_pos_grid=rel_pos_grid,
        )
        self.ln2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.ffn = FFN(
            embed_dims,
            feedforward_channels,
            ffn_drop=drop_rate,
            drop_path_rate=drop_path_rate,
            layer_scale_init_value=layer_scale_init_value,
        )
        if with_cp:
            checkpoint_module(self)

    def forward(self, x: torch.Tensor, query_index: torch.Tensor | None = None) -> torch.Tensor:
        """Args: x (B, N, D); query_index (B, M): compute only these tokens' outputs (keys and values still come
        from all N), equal to ``gather_tokens(forward(x), query_index)``. Returns: (B, N, D) or (B, M, D)."""
        if query_index is None:
            x = x + self.attn(self.ln1(x))
        else:
            x = gather_tokens(x, query_index) + self.attn(self.ln1(x), query_index)
        return self.ffn(self.ln2(x), identity=x)
