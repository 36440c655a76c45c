"""Patch embedding and position embeddings.

Legend: ``B`` batch, ``C`` input channels, ``D`` width, ``Hp x Wp`` patch grid, ``L = Hp * Wp`` patches.
"""

import torch
import torch.nn.functional as F
from torch import nn


class PatchEmbed(nn.Module):
    """Non-overlapping patches by a strided conv; the conv is named ``projection`` as in mmcv/mmpretrain.

    Args:
        in_channels: Image channels C.
        embed_dims: Output width D.
        patch_size: Patch side p (kernel = stride = p).
        img_size: Nominal input size, to compute ``init_out_size`` (the grid the position table is built for).
        bias: Conv bias.
        norm: Apply a LayerNorm after the projection (kept as ``norm``; Swin uses it).
    """

    def __init__(
        self,
        in_channels: int = 3,
        embed_dims: int = 768,
        patch_size: int = 16,
        img_size: int | tuple[int, int] = 224,
        bias: bool = True,
        norm: bool = False,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.patch_size = patch_size
        self.init_out_size = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.projection = nn.Conv2d(in_channels, embed_dims, patch_size, stride=patch_size, bias=bias)
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps) if norm else None

    def forward_at(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Embed only the patches at ``index``: equal to ``gather_tokens(self(x)[0], index)`` with the conv run as
        one matmul over the M chosen patches (MAE's visible ones) instead of all L.

        Args:
            x: Images (B, C, H, W), H and W multiples of p.
            index: (B, M) patch positions in raster order.

        Returns:
            (B, M, D).
        """
        B, C, H, W = x.shape
        p = self.patch_size
        Hp, Wp = H // p, W // p
        patches = x[:, :, : Hp * p, : Wp * p].reshape(B, C, Hp, p, Wp, p).permute(0, 2, 4, 1, 3, 5)  # (B,Hp,Wp,C,p,p)
        rows = torch.arange(B, device=x.device).unsqueeze(1)
        patches = patches[rows, index // Wp, index % Wp].flatten(2)  # (B, M, C*p*p), the conv weight's layout
        w = self.projection.weight
        x = F.linear(patches, w.reshape(w.shape[0], -1), self.projection.bias)  # (B, M, D)
        return self.norm(x) if self.norm is not None else x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.projection(x)  # (B, C, H, W) -> (B, D, Hp, Wp)
        hw = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)  # (B, D, Hp, Wp) -> (B, L, D)
        if self.norm is not None:
            x = self.norm(x)
        return x, hw


def build_2d_sincos_position_embedding(
    grid_size: int | tuple[int, int], embed_dims: int, temperature: float = 10000.0, cls_token: bool = False
) -> torch.Tensor:
    """The fixed 2-D sin-cos table of MAE, in raster (row-major) token order.

    Channel layout, as the official MAE ``get_2d_sincos_pos_embed``: the first D/2 channels encode the column (x)
    index, the last D/2 the row (y) index; within each half, D/4 sines then D/4 cosines of ``pos * omega_k`` with
    ``omega_k = temperature ** (-k / (D/4))``. mmpretrain's ``build_2d_sincos_position_embedding`` puts the row in the
    first half (its 'ij' meshgrid) and breaks raster order for non-square grids; both tables hold the same values up
    to swapping the halves, and since the table is stored in checkpoints, loading either kind is exact.

    Args:
        grid_size: ``Hp`` or ``(Hp, Wp)``.
        embed_dims: D, a multiple of 4.
        temperature: Frequency base.
        cls_token: Prepend an all-zero row for the cls token.

    Returns:
        Tensor (1, Hp*Wp [+1], D), float32.
    """
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    if embed_dims % 4:
        raise ValueError(f'embed_dims must be a multiple of 4 for the 2-D sin-cos table, got {embed_dims}')
    quarter = embed_dims // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float64) / quarter)  # (D/4,)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing='ij')
    out_x = xs.reshape(-1, 1) * omega  # (L, D/4), column index
    out_y = ys.reshape(-1, 1) * omega  # (L, D/4), row index
    table = torch.cat([out_x.sin(), out_x.cos(), out_y.sin(), out_y.cos()], dim=1).float()  # (L, D)
    if cls_token:
        table = torch.cat([torch.zeros(1, embed_dims), table], dim=0)  # (L+1, D)
    return table.unsqueeze(0)


def resize_pos_embed(
    pos_embed: torch.Tensor,
    src_shape: tuple[int, int],
    dst_shape: tuple[int, int],
    mode: str = 'bicubic',
    num_extra_tokens: int = 1,
) -> torch.Tensor:
    """Interpolate the patch part of a position table from grid ``src_shape`` to ``dst_shape``.

    Extra tokens (cls) are kept as they are. Interpolation runs in float32 and casts back.

    Args:
        pos_embed: (1, num_extra_tokens + Hs*Ws, D).
        src_shape: (Hs, Ws).
        dst_shape: (Hd, Wd).

    Returns:
        (1, num_extra_tokens + Hd*Wd, D).
    """
    if tuple(src_shape) == tuple(dst_shape):
        return pos_embed
    _, n, d = pos_embed.shape
    if n - num_extra_tokens != src_shape[0] * src_shape[1]:
        raise ValueError(f'pos_embed has {n - num_extra_tokens} patch rows, not {src_shape[0]}x{src_shape[1]}')
    extra, grid = pos_embed[:, :num_extra_tokens], pos_embed[:, num_extra_tokens:]
    grid = grid.reshape(1, *src_shape, d).permute(0, 3, 1, 2)  # (1, Hs*Ws, D) -> (1, D, Hs, Ws)
    grid = F.interpolate(grid.float(), size=tuple(dst_shape), mode=mode, align_corners=False)
    grid = grid.flatten(2).transpose(1, 2).to(pos_embed.dtype)  # (1, D, Hd, Wd) -> (1, Hd*Wd, D)
    return torch.cat([extra, grid], dim=1)
