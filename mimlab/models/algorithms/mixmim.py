"""MixMIM / MixMAE: Mixed and Masked Autoencoder (Liu et al., CVPR 2023; arXiv 2205.13137).

Legend: ``B`` batch (even: image b is paired with image B-1-b), ``s = 32`` encoder output stride, ``L_4 =
(H/s)(W/s)`` output tokens (49 at 224 px), ``L_i`` tokens of stage i, ``C`` encoder output width, ``Dd`` decoder
width, ``P = s * s * 3`` pixels per output token.

Order: mix -> encode -> decode twice -> unmix -> loss.

- Mix: one random mask of ``int(L_4 * 0.5)`` output tokens, shared by the batch, upsampled (nearest) to every stage
  grid. After the patch embedding, image b takes the tokens of its partner ``B-1-b`` (``x.flip(0)``) where the mask
  is 1. Each masked unit is one 32x32 output token, so patch merging never combines tokens of two images.
- Encode: the window attention of every stage is blocked between tokens of different sources (the mask tells
  which), so each image is encoded from its own visible tokens only; no mask token in the encoder.
- Decode: from the latent (B, L_4, C), branch 1 keeps the tokens of the own image and puts the decoder's
  ``mask_token`` where the partner's were; branch 2 the reverse. Both branches (2B, L_4, Dd) go through the decoder.
- Unmix: image b's reconstruction takes branch 1 of sample b at the mask's 1s and branch 2 of sample B-1-b at its 0s,
  so every token of every image is predicted exactly once, each from the image's complementary visible half.
- Loss: mean squared error against the per-token normalised pixels (norm_pix), averaged over all tokens.

State-dict keys equal mmpretrain 1.2.0's ``MixMIM`` (``backbone.*`` = ``MixMIMPretrainTransformer``, ``neck.*`` =
``MixMIMPretrainDecoder``; the head has no parameters).
"""

import random

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

from mimlab.registry import MODELS

from ..backbones.mixmim import MixMIMTransformer
from ..layers import build_2d_sincos_position_embedding
from .base import BaseAlgorithm, reconstruction_outputs
from .mae import MAEPretrainDecoder, MAEPretrainHead, _init_mae_module, patchify, undo_norm_pix, unpatchify

# ------------------------------------------------------------------------------------------------- mix, encode


@MODELS.register_module()
class MixMIMPretrainTransformer(MixMIMTransformer):
    """MixMIM encoder with the mixing entry point :meth:`forward_mixed`; ``forward`` stays the plain encoder.

    Args:
        mask_ratio: Fraction of output tokens taken from the partner image (0.5: the two images are complementary).
        range_mask_ratio: Adds ``U(0, range_mask_ratio)`` to the ratio per step (0 in every published recipe).
        **kwargs: :class:`MixMIMTransformer` arguments.
    """

    def __init__(self, mask_ratio: float = 0.5, range_mask_ratio: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_ratio = mask_ratio
        self.range_mask_ratio = range_mask_ratio

    def random_masking(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Draw the batch-shared mixing mask, exactly as the references draw it.

        ``random.uniform`` for the ratio jitter (Python's generator), then one ``torch.rand(1, 1, L_4)``; the
        ``int(L_4 * ratio)`` tokens with the smallest noise take the partner's tokens.

        Args:
            x: Images (B, 3, H, W), for the grid size and device.

        Returns:
            Per stage i, a float mask (1, L_i, 1), 1 = token from the partner image; the last is at the output grid.
        """
        s = self.stage_strides[-1]
        out_h, out_w = x.shape[2] // s, x.shape[3] // s
        L = out_h * out_w
        ratio = self.mask_ratio + random.uniform(0.0, self.range_mask_ratio)
        noise = torch.rand(1, 1, L, device=x.device)
        mask = torch.zeros(1, 1, L, device=x.device)
        mask.scatter_(2, torch.argsort(noise, dim=2)[:, :, : int(L * ratio)], 1.0)
        mask = mask.reshape(1, 1, out_h, out_w)
        n = len(self.depths)
        masks = []
        for i in range(n):
            f = 2 ** (n - 1 - i)  # stage i's grid is f times the output grid
            m = F.interpolate(mask, size=(out_h * f, out_w * f), mode='nearest') if f > 1 else mask
            masks.append(m.reshape(1, -1, 1))  # (1, 1, h, w) -> (1, L_i, 1)
        return masks

    def forward_mixed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix each image with its partner ``B-1-b`` and encode both sources apart.

        Args:
            x: Normalised images (B, 3, H, W).

        Returns:
            latent (B, L_4, C) and the output-grid mask (1, L_4, 1), 1 = the partner's token.
        """
        masks = self.random_masking(x)
        mix = lambda t, hw: t * (1.0 - masks[0]) + t.flip(0) * masks[0]  # (B, L_1, C_1), before the position table
        return self.forward_tokens(x, {0: mix}, sources=masks), masks[-1]


# -------------------------------------------------------------------------------------------------------- decode


@MODELS.register_module()
class MixMIMPretrainDecoder(MAEPretrainDecoder):
    """Dual-branch decoder: the latent with the partner's tokens replaced by ``mask_token``, and with the own ones.

    Args:
        embed_dims: Encoder output width C (inferred from the backbone by :class:`MixMIM` when None).
        num_patches: Output tokens L_4 (inferred).
        encoder_stride: s; each token predicts ``s * s * 3`` pixels (inferred).
        decoder_embed_dims: Dd (512 in every size).
        decoder_depth: Blocks (8).
        decoder_num_heads: Heads (16).
        mlp_ratio: MLP width / Dd.
        norm_eps: LayerNorm epsilon: 1e-5 as the official timm blocks (mmpretrain uses 1e-6).
    """

    def __init__(
        self,
        embed_dims: int | None = None,
        num_patches: int | None = None,
        encoder_stride: int | None = None,
        in_channels: int = 3,
        decoder_embed_dims: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        norm_eps: float = 1e-5,
    ):
        if encoder_stride is None:
            raise ValueError('MixMIMPretrainDecoder needs encoder_stride (MixMIM infers it from the backbone)')
        super().__init__(
            embed_dims=embed_dims,
            patch_size=encoder_stride,
            num_patches=num_patches,
            in_channels=in_channels,
            decoder_embed_dims=decoder_embed_dims,
            decoder_depth=decoder_depth,
            decoder_num_heads=decoder_num_heads,
            mlp_ratio=mlp_ratio,
            norm_eps=norm_eps,
        )
        # no cls token in MixMIM: one position per output token
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, num_patches, decoder_embed_dims), requires_grad=False)

    def init_weights(self) -> None:
        """The official init: sin-cos positions, xavier-uniform Linears, ``mask_token`` trunc-normal(0.02)."""
        side = int(round(self.num_patches**0.5))
        table = build_2d_sincos_position_embedding(side, self.decoder_pos_embed.shape[-1], cls_token=False)
        self.decoder_pos_embed.data.copy_(table)
        self.apply(_init_mae_module)
        trunc_normal_(self.mask_token, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Args: x latent (B, L_4, C); mask (1, L_4, 1), 1 = partner's token. Returns: (2B, L_4, P), branch 1 first."""
        x = self.decoder_embed(x)  # (B, L_4, C) -> (B, L_4, Dd)
        token = self.mask_token.to(x.dtype)
        own = x * (1 - mask) + token * mask  # the own image's tokens; [MASK] where the partner's were
        partner = x * mask + token * (1 - mask)
        x = torch.cat([own, partner], dim=0) + self.decoder_pos_embed  # (2B, L_4, Dd)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.ln1(x))

    def no_weight_decay(self) -> set[str]:
        return set()  # the official pretraining decays mask_token (only 1-D parameters are exempt)


# -------------------------------------------------------------------------------------------------- target, loss


@MODELS.register_module()
class MixMIMPretrainHead(MAEPretrainHead):
    """Unmixes the two branches into one reconstruction per image and applies the loss on every token.

    Args:
        loss: ``PixelReconstructionLoss(criterion='L2')``, averaged over all tokens (no mask).
        norm_pix: Per-token normalised target (True in the published recipe).
        patch_size: The encoder stride s (inferred from the backbone by :class:`MixMIM`).
    """

    def unmix(self, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(2B, L_4, P) branches -> (B, L_4, P): branch 1 of b where mask is 1, branch 2 of B-1-b where it is 0."""
        B = pred.shape[0] // 2
        return pred[:B] * mask + pred[B:].flip(0) * (1 - mask)

    def loss(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Args: pred (2B, L_4, P); target image (B, 3, H, W); mask (1, L_4, 1). Returns: scalar."""
        return self.loss_module(self.unmix(pred, mask), self.construct_target(target))


# ----------------------------------------------------------------------------------------------------- algorithm


@MODELS.register_module()
class MixMIM(BaseAlgorithm):
    """MixMIM: ``backbone`` = :class:`MixMIMPretrainTransformer`, ``neck`` = :class:`MixMIMPretrainDecoder`, ``head`` =
    :class:`MixMIMPretrainHead`. The decoder's input width, token count and stride and the head's patch size come
    from the backbone. A ``target_generator`` (PixMIM's low-pass filter) changes the target image.

    The pairing is within the local (per-process) batch; an odd batch pairs its middle image with itself, which
    then reconstructs itself from all its tokens (the recipes drop the last incomplete batch)."""

    def _neck_defaults(self) -> dict:
        b = self.backbone
        s = b.out_strides[-1]
        grid = (b.patch_resolution[0] * b.patch_size // s, b.patch_resolution[1] * b.patch_size // s)
        return dict(embed_dims=b.out_channels[-1], num_patches=grid[0] * grid[1], encoder_stride=s)

    def _head_defaults(self) -> dict:
        return dict(patch_size=self.backbone.out_strides[-1])

    def loss(self, inputs: torch.Tensor, data_samples=None) -> dict:
        """Args: inputs normalised images (B, 3, H, W). Returns: ``dict(loss=scalar)``."""
        latent, mask = self.backbone.forward_mixed(inputs)
        pred = self.neck(latent, mask)  # (2B, L_4, P)
        return dict(loss=self.head.loss(pred, self.make_target(inputs), mask))

    @torch.no_grad()
    def reconstruct(self, inputs: torch.Tensor, data_samples=None) -> dict:
        """Reconstruction for visualisation; draws a fresh mixing mask and pairs image b with image B-1-b (a single
        image is paired with itself). Returns :func:`~mimlab.models.algorithms.base.reconstruction_outputs`:
        ``masked`` is the mixed image the encoder gets, ``mask`` marks the partner's 32-px tokens in it, and ``pred``
        is the unmixed reconstruction (every token predicted from the image's other half; norm_pix undone)."""
        latent, mask = self.backbone.forward_mixed(inputs)  # mask (1, L_4, 1), 1 = the partner's token
        pred = self.head.unmix(self.neck(latent, mask), mask)  # (2B, L_4, P) -> (B, L_4, P)
        s = self.head.patch_size
        target = self.make_target(inputs)
        if self.head.norm_pix:
            pred = undo_norm_pix(pred, patchify(target, s))
        hw = (inputs.shape[2] // s, inputs.shape[3] // s)
        mask_img = unpatchify(mask.expand(inputs.shape[0], -1, s * s), s, hw, in_channels=1)  # (B, 1, H, W)
        mixed = inputs * (1 - mask_img) + inputs.flip(0) * mask_img
        return reconstruction_outputs(inputs, target, unpatchify(pred, s, hw), mask_img, mixed)
