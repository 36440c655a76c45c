"""MAE: Masked Autoencoders Are Scalable Vision Learners (He et al., CVPR 2022).

Legend: ``B`` batch, ``L`` patches, ``L_vis = int(L * (1 - mask_ratio))`` kept patches, ``D`` encoder width,
``Dd`` decoder width, ``p`` patch side, ``P = p * p * 3`` pixels per patch, ``Hp x Wp`` patch grid.

Order follows the paper: mask -> encode (visible patches only) -> decode (with mask tokens) -> target -> loss.
State-dict keys equal mmpretrain 1.2.0's ``MAE`` (``backbone.*`` = ``MAEViT``, ``neck.*`` = ``MAEPretrainDecoder``),
so its and mmselfsup's checkpoints load strictly.

Init follows the official code (``models_mae.py``): every Linear xavier-uniform with zero bias, the patch conv
xavier-uniform as a flattened Linear, cls/mask tokens N(0, 0.02), fixed 2-D sin-cos position tables (zero cls row).
mmpretrain differs only in drawing FFN biases from N(0, 1e-6).
"""

import torch
from torch import nn

from mimlab.registry import MODELS

from ..backbones.vit import VisionTransformer
from ..layers import TransformerEncoderLayer, build_2d_sincos_position_embedding, gather_tokens
from .base import BaseAlgorithm, reconstruction_outputs

# ----------------------------------------------------------------------------------------------------------- mask


def random_masking(x: torch.Tensor, mask_ratio: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample random masking by argsort of uniform noise, drawn exactly as mmpretrain/official MAE.

    One ``torch.rand(B, L)`` per call; ascending argsort keeps the patches with the smallest noise, so the same
    seed gives the same mask as the references.

    Args:
        x: Patch tokens (B, L, D).
        mask_ratio: Fraction of patches removed.

    Returns:
        x_vis (B, L_vis, D); mask (B, L) with 1 = removed, 0 = kept; ids_restore (B, L), the inverse permutation
        that puts shuffled tokens back in raster order.
    """
    B, L, D = x.shape
    ids_keep, mask, ids_restore = random_mask_ids(B, L, mask_ratio, x.device)
    return gather_tokens(x, ids_keep), mask, ids_restore  # (B, L, D) -> (B, L_vis, D)


def random_mask_ids(
    batch: int, num_patches: int, mask_ratio: float, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The draw of :func:`random_masking` without the tokens (the same ``torch.rand`` call, so the same masks).

    Returns:
        ids_keep (B, L_vis) kept positions in draw order; mask (B, L) 1 = removed; ids_restore (B, L).
    """
    len_keep = int(num_patches * (1 - mask_ratio))
    noise = torch.rand(batch, num_patches, device=device)
    ids_shuffle = torch.argsort(noise, dim=1)  # (B, L), ascending: kept patches first
    ids_restore = torch.argsort(ids_shuffle, dim=1)  # (B, L)
    ids_keep = ids_shuffle[:, :len_keep]  # (B, L_vis)
    mask = torch.ones(batch, num_patches, device=device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)  # (B, L) in shuffled order -> raster order
    return ids_keep, mask, ids_restore


def masked_index(ids_restore: torch.Tensor, len_keep: int) -> torch.Tensor:
    """Positions (raster order, ascending) of the removed patches: (B, L) ``ids_restore`` -> (B, L - len_keep)."""
    ids_shuffle = torch.argsort(ids_restore, dim=1)  # the inverse permutation: kept patches first
    return torch.sort(ids_shuffle[:, len_keep:], dim=1).values


# -------------------------------------------------------------------------------------------------------- encode


@MODELS.register_module()
class MAEViT(VisionTransformer):
    """ViT that encodes only the visible patches (``forward_masked``); ``forward`` is the plain ViT.

    Args:
        mask_ratio: Fraction of patches removed by :meth:`forward_masked`.
        Others: see :class:`VisionTransformer`; defaults here are MAE's (arch 'b', p16, out_type 'raw').
    """

    def __init__(
        self,
        arch: str | dict = 'b',
        img_size: int = 224,
        patch_size: int = 16,
        mask_ratio: float = 0.75,
        out_type: str = 'raw',
        **kwargs,
    ):
        kwargs['with_cls_token'] = True
        super().__init__(arch=arch, img_size=img_size, patch_size=patch_size, out_type=out_type, **kwargs)
        if not 0 <= mask_ratio < 1:
            raise ValueError(f'mask_ratio must be in [0, 1), got {mask_ratio}')
        self.mask_ratio = mask_ratio
        self.pos_embed.requires_grad = False  # fixed sin-cos table, still saved in checkpoints

    def init_random_weights(self) -> None:
        table = build_2d_sincos_position_embedding(self.patch_resolution, self.embed_dims, cls_token=True)
        self.pos_embed.data.copy_(table)
        self.apply(_init_mae_module)
        w = self.patch_embed.projection.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)

    def forward_masked(
        self, x: torch.Tensor, mask_ratio: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode a random subset of patches.

        Args:
            x: Normalised images (B, 3, H, W) at the nominal ``img_size``.
            mask_ratio: Overrides ``self.mask_ratio``.

        Returns:
            latent (B, 1 + L_vis, D) after the final norm; mask (B, L); ids_restore (B, L).
        """
        B, L = x.shape[0], self.pos_embed.shape[1] - 1
        grid = (x.shape[2] // self.patch_size, x.shape[3] // self.patch_size)
        if grid != tuple(self.patch_resolution):
            raise ValueError(
                f'MAEViT was built for a {self.patch_resolution} patch grid, got {tuple(x.shape[2:])} images ({grid})'
            )
        ids_keep, mask, ids_restore = random_mask_ids(
            B, L, self.mask_ratio if mask_ratio is None else mask_ratio, x.device
        )
        # embed the visible patches only (the same values as embedding all, adding the table and gathering)
        x = self.patch_embed.forward_at(x, ids_keep)  # (B, 3, H, W) -> (B, L_vis, D)
        x = x + gather_tokens(self.pos_embed[:, 1:].expand(B, -1, -1), ids_keep)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(B, -1, -1)
        x = torch.cat([cls, x], dim=1)  # (B, L_vis, D) -> (B, 1 + L_vis, D)
        for layer in self.layers:
            x = layer(x)
        return self.ln1(x), mask, ids_restore

    def no_weight_decay(self) -> set[str]:
        return {'pos_embed', 'cls_token'}


# -------------------------------------------------------------------------------------------------------- decode


@MODELS.register_module()
class MAEPretrainDecoder(nn.Module):
    """Lightweight decoder: visible latents + mask tokens, unshuffled, through ``decoder_depth`` blocks to pixels.

    Args:
        embed_dims: Encoder width D (inferred from the backbone by :class:`MAE` when None).
        patch_size: p (inferred from the backbone when None).
        num_patches: L (inferred from the backbone when None).
        in_channels: Image channels.
        decoder_embed_dims: Dd (512 in the paper).
        decoder_depth: Blocks (8).
        decoder_num_heads: Heads (16).
        mlp_ratio: MLP width / Dd.
        norm_eps: LayerNorm epsilon.
        predict_feature_dim: Output width per patch; defaults to ``p * p * in_channels``.
    """

    def __init__(
        self,
        embed_dims: int | None = None,
        patch_size: int | None = None,
        num_patches: int | None = None,
        in_channels: int = 3,
        decoder_embed_dims: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        norm_eps: float = 1e-6,
        predict_feature_dim: int | None = None,
    ):
        super().__init__()
        if embed_dims is None or patch_size is None or num_patches is None:
            raise ValueError('MAEPretrainDecoder needs embed_dims, patch_size and num_patches (MAE infers them)')
        self.num_patches = num_patches
        self.decoder_embed = nn.Linear(embed_dims, decoder_embed_dims)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dims))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, decoder_embed_dims), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            TransformerEncoderLayer(
                decoder_embed_dims, decoder_num_heads, int(mlp_ratio * decoder_embed_dims), norm_eps=norm_eps
            )
            for _ in range(decoder_depth)
        )
        self.ln1 = nn.LayerNorm(decoder_embed_dims, eps=norm_eps)
        out_dim = predict_feature_dim if predict_feature_dim is not None else patch_size**2 * in_channels
        self.decoder_pred = nn.Linear(decoder_embed_dims, out_dim)

    def init_weights(self) -> None:
        side = int(round(self.num_patches**0.5))
        table = build_2d_sincos_position_embedding(side, self.decoder_pos_embed.shape[-1], cls_token=True)
        self.decoder_pos_embed.data.copy_(table)
        self.apply(_init_mae_module)
        nn.init.normal_(self.mask_token, std=0.02)

    def embed_tokens(self, x: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Visible latents (B, 1 + L_vis, D) -> decoder tokens (B, 1 + L, Dd) in raster order, mask tokens at the
        removed patches, position table added."""
        x = self.decoder_embed(x)  # (B, 1 + L_vis, D) -> (B, 1 + L_vis, Dd)
        B, n_vis = x.shape[:2]
        L = ids_restore.shape[1]
        tokens = torch.cat([x[:, 1:], self.mask_token.expand(B, L + 1 - n_vis, -1)], dim=1)  # (B, L, Dd) shuffled
        tokens = gather_tokens(tokens, ids_restore)  # -> raster order
        return torch.cat([x[:, :1], tokens], dim=1) + self.decoder_pos_embed  # (B, 1 + L, Dd)

    def forward(self, x: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Args: x latent (B, 1 + L_vis, D); ids_restore (B, L). Returns: prediction of every patch (B, L, P)."""
        x = self.embed_tokens(x, ids_restore)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.ln1(x))[:, 1:]  # (B, 1 + L, Dd) -> (B, L, P)

    def forward_at(self, x: torch.Tensor, ids_restore: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The prediction of the patches at ``index`` only, equal to ``gather_tokens(forward(x, ids_restore), index)``.

        The last block (queries, output projection, MLP), the norm and the prediction layer run for these M tokens
        only; every token still gives keys and values, and earlier blocks run on all of them.

        Args: x latent (B, 1 + L_vis, D); ids_restore (B, L); index (B, M) patch positions (raster order, 0-based).
        Returns: (B, M, P).
        """
        x = self.embed_tokens(x, ids_restore)
        for block in self.decoder_blocks[:-1]:
            x = block(x)
        x = self.decoder_blocks[-1](x, query_index=index + 1)  # (B, 1 + L, Dd) -> (B, M, Dd); +1: cls first
        return self.decoder_pred(self.ln1(x))  # (B, M, P)

    def no_weight_decay(self) -> set[str]:
        return {'mask_token', 'decoder_pos_embed'}


# -------------------------------------------------------------------------------------------------- target, loss


def patchify(imgs: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, Hp*p, Wp*p) -> (B, L, p*p*C), channels last within a patch (the official MAE layout)."""
    B, C, H, W = imgs.shape
    if H % p or W % p:
        raise ValueError(f'image size {H}x{W} is not a multiple of the patch size {p}')
    x = imgs.reshape(B, C, H // p, p, W // p, p)
    x = torch.einsum('nchpwq->nhwpqc', x)  # (B, Hp, Wp, p, p, C)
    return x.reshape(B, (H // p) * (W // p), p * p * C)


def unpatchify(x: torch.Tensor, p: int, hw: tuple[int, int] | None = None, in_channels: int = 3) -> torch.Tensor:
    """(B, L, p*p*C) -> (B, C, Hp*p, Wp*p); ``hw = (Hp, Wp)`` defaults to a square grid."""
    B, L, _ = x.shape
    h, w = hw if hw is not None else (int(round(L**0.5)),) * 2
    if h * w != L:
        raise ValueError(f'{L} patches do not form a {h}x{w} grid')
    x = x.reshape(B, h, w, p, p, in_channels)
    x = torch.einsum('nhwpqc->nchpwq', x)  # (B, C, Hp, p, Wp, p)
    return x.reshape(B, in_channels, h * p, w * p)


@MODELS.register_module()
class MAEPretrainHead(nn.Module):
    """Turns the target image into per-patch targets and applies the masked loss.

    Args:
        loss: Loss config, ``PixelReconstructionLoss(criterion='L2')`` for MAE.
        norm_pix: Normalise each target patch by its own mean and (unbiased) variance, eps 1e-6.
        patch_size: p (inferred from the backbone by :class:`MAE` when None).
        in_channels: Image channels.
    """

    def __init__(self, loss: dict | None = None, norm_pix: bool = False, patch_size: int | None = None, in_channels=3):
        super().__init__()
        if patch_size is None:
            raise ValueError('MAEPretrainHead needs patch_size (MAE infers it from the backbone)')
        self.norm_pix = norm_pix
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.loss_module = MODELS.build(loss if loss is not None else dict(type='PixelReconstructionLoss'))

    def construct_target(self, target: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, L, P), or (B, M, P) for the patches at ``index`` (B, M); per-patch normalised when
        ``norm_pix``."""
        target = patchify(target, self.patch_size)
        if index is not None:
            target = gather_tokens(target, index)
        if self.norm_pix:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)  # unbiased, as the official code
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        return target

    def loss(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Args: pred (B, L, P); target image (B, C, H, W); mask (B, L), 1 = removed. Returns: scalar."""
        return self.loss_module(pred, self.construct_target(target), mask)

    def loss_at(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, index: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`loss` from the predictions of the patches at ``index`` (B, M) only, pred (B, M, P): equal to the full
        loss when the loss module weighs patches by ``mask`` and ``index`` holds every removed patch."""
        return self.loss_module(pred, self.construct_target(target, index), torch.gather(mask, 1, index))


# ----------------------------------------------------------------------------------------------------- algorithm


@MODELS.register_module()
class MAE(BaseAlgorithm):
    """Masked autoencoder: ``backbone`` = :class:`MAEViT`, ``neck`` = :class:`MAEPretrainDecoder`, ``head`` =
    :class:`MAEPretrainHead`. The decoder's input width, patch size and patch count, and the head's patch size, are
    taken from the backbone. A ``target_generator`` (e.g. PixMIM's low-pass filter) changes the target image.

    Args:
        predict_masked_only: The loss counts the removed patches only (MAE's), so predict just those: the decoder's
            last block, norm and prediction layer run for M = L - L_vis tokens (:meth:`MAEPretrainDecoder.forward_at`,
            :meth:`MAEPretrainHead.loss_at`): the same loss and gradients, fewer FLOPs. Set False for a head whose
            loss also counts visible patches.
        **kwargs: :class:`~mimlab.models.algorithms.base.BaseAlgorithm` arguments.
    """

    def __init__(self, *args, predict_masked_only: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.predict_masked_only = predict_masked_only

    def _neck_defaults(self) -> dict:
        b = self.backbone
        return dict(
            embed_dims=b.embed_dims,
            patch_size=b.patch_size,
            num_patches=b.patch_resolution[0] * b.patch_resolution[1],
        )

    def _head_defaults(self) -> dict:
        return dict(patch_size=self.backbone.patch_size)

    def loss(self, inputs: torch.Tensor, data_samples=None) -> dict:
        """Args: inputs normalised images (B, 3, H, W). Returns: ``dict(loss=scalar)``."""
        latent, mask, ids_restore = self.backbone.forward_masked(inputs)
        target = self.make_target(inputs)
        if not self.predict_masked_only:
            return dict(loss=self.head.loss(self.neck(latent, ids_restore), target, mask))  # (B, L, P) predicted
        index = masked_index(ids_restore, latent.shape[1] - 1)  # (B, M), the removed patches
        pred = self.neck.forward_at(latent, ids_restore, index)  # (B, M, P)
        return dict(loss=self.head.loss_at(pred, target, mask, index))

    @torch.no_grad()
    def reconstruct(self, inputs: torch.Tensor, data_samples=None) -> dict:
        """Reconstruction for visualisation (:mod:`mimlab.visualization`); draws a fresh mask.

        Args:
            inputs: Normalised images (B, 3, H, W).
            data_samples: Unused (the mask is drawn here).

        Returns:
            dict of (B, C, H, W) tensors in the input's normalised space: ``target`` the image the model learns to
            predict (the input, or the target generator's version), ``masked`` what the encoder sees (removed
            patches set to 0, the mean colour), ``pred`` the decoder's image (per-patch normalisation undone with
            the target patches' statistics when ``norm_pix``), ``pasted`` the input with its removed patches replaced
            by ``pred``, and ``mask`` (B, 1, H, W), 1 = removed.
        """
        latent, mask, ids_restore = self.backbone.forward_masked(inputs)
        pred = self.neck(latent, ids_restore)  # (B, L, P)
        p = self.head.patch_size
        target = self.make_target(inputs)
        if self.head.norm_pix:
            pred = undo_norm_pix(pred, patchify(target, p))
        hw = (inputs.shape[2] // p, inputs.shape[3] // p)
        pred_img = unpatchify(pred, p, hw)
        mask_img = unpatchify(mask.unsqueeze(-1).expand(-1, -1, p * p), p, hw, in_channels=1)  # (B, 1, H, W)
        return reconstruction_outputs(inputs, target, pred_img, mask_img, inputs * (1 - mask_img))


def undo_norm_pix(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Put per-patch normalised predictions (B, L, P) back on the scale of the target patches (B, L, P)."""
    return pred * (target.var(dim=-1, keepdim=True) + 1.0e-6) ** 0.5 + target.mean(dim=-1, keepdim=True)


def _init_mae_module(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
