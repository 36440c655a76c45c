"""SimMIM: a Simple Framework for Masked Image Modeling (Xie et al., CVPR 2022).

Legend: ``B`` batch, ``H x W`` image, ``p`` model patch (4 for Swin, 16 for ViT), ``Hp x Wp = H/p x W/p`` patch grid,
``M`` mask patch (32), ``s`` encoder stride (32), ``C`` encoder output width.

Order: mask (random ``M x M`` blocks, drawn in the data pipeline) -> encode (a learnable mask token replaces the
embeddings of masked patches) -> decode (1x1 conv + PixelShuffle back to pixels) -> L1 on masked pixels.
State-dict keys equal mmpretrain 1.2.0's ``SimMIM`` (``backbone.mask_token``, ``neck.decoder.0``).
"""

import math

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from timm.layers import trunc_normal_
from torch import nn

from mimlab.registry import MODELS, TRANSFORMS

from ..backbones.swin import SwinTransformer
from ..backbones.vit import VisionTransformer
from .base import BaseAlgorithm

# ----------------------------------------------------------------------------------------------------------- mask


@TRANSFORMS.register_module()
class SimMIMMaskGenerator(BaseTransform):
    """Random block mask: exactly ``ceil(blocks * mask_ratio)`` of the ``(input_size / mask_patch_size)^2`` blocks,
    each block repeated to the model's patch grid.

    Writes ``results['mask']``: (Hp, Wp) int array, 1 = masked. Uses numpy's global generator (seeded per worker).

    Args:
        input_size: Image side (192).
        mask_patch_size: Block side in pixels (32).
        model_patch_size: Encoder patch side in pixels (4 for Swin).
        mask_ratio: Fraction of blocks masked (0.6 -> 22 of 36).
    """

    def __init__(self, input_size=192, mask_patch_size=32, model_patch_size=4, mask_ratio=0.6):
        super().__init__()
        if input_size % mask_patch_size or mask_patch_size % model_patch_size:
            raise ValueError('input_size must be a multiple of mask_patch_size, and that of model_patch_size')
        self.input_size, self.mask_patch_size, self.model_patch_size = input_size, mask_patch_size, model_patch_size
        self.mask_ratio = mask_ratio
        self.rand_size = input_size // mask_patch_size  # blocks per side
        self.scale = mask_patch_size // model_patch_size  # patches per block side
        self.mask_count = int(math.ceil(self.rand_size**2 * mask_ratio))

    def transform(self, results: dict) -> dict:
        blocks = np.zeros(self.rand_size**2, dtype=int)
        blocks[np.random.permutation(self.rand_size**2)[: self.mask_count]] = 1
        mask = blocks.reshape(self.rand_size, self.rand_size).repeat(self.scale, 0).repeat(self.scale, 1)
        results['mask'] = mask  # (Hp, Wp)
        return results


def _blend_mask_token(x: torch.Tensor, mask: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    """x (B, L, C) patch embeddings; mask (B, Hp, Wp) 1 = masked -> masked ones replaced by the token."""
    w = mask.flatten(1).unsqueeze(-1).type_as(x)  # (B, Hp, Wp) -> (B, L, 1)
    return x * (1.0 - w) + token.expand_as(x) * w


# -------------------------------------------------------------------------------------------------------- encode


@MODELS.register_module()
class SimMIMSwinTransformer(SwinTransformer):
    """Swin whose :meth:`forward_masked` swaps masked patch embeddings for a learnable ``mask_token``."""

    def __init__(self, arch='base', img_size=192, window_size=6, out_indices=(3,), drop_path_rate=0.1, **kwargs):
        super().__init__(
            arch=arch,
            img_size=img_size,
            window_size=window_size,
            out_indices=out_indices,
            drop_path_rate=drop_path_rate,
            **kwargs,
        )
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))

    def init_weights(self) -> None:
        if not getattr(self, '_is_init', False):
            trunc_normal_(self.mask_token, std=0.02)
        super().init_weights()

    def forward_masked(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Args: x (B, 3, H, W); mask (B, Hp, Wp). Returns: per out index (B, C_i, H_i, W_i)."""
        x, hw = self.patch_embed(x)  # (B, L, C)
        x = _blend_mask_token(x, mask, self.mask_token)
        if self.use_abs_pos_embed:
            x = x + self.absolute_pos_embed
        return self.forward_stages(self.drop_after_pos(x), hw)

    def no_weight_decay(self) -> set[str]:
        return super().no_weight_decay() | {'mask_token'}


@MODELS.register_module()
class SimMIMViT(VisionTransformer):
    """ViT for SimMIM (the paper's ViT-B setting): mask token after patch embedding, patch-token feature map out."""

    def __init__(self, arch='b', img_size=224, patch_size=16, out_type='featmap', **kwargs):
        super().__init__(arch=arch, img_size=img_size, patch_size=patch_size, out_type=out_type, **kwargs)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))

    def init_weights(self) -> None:
        if not getattr(self, '_is_init', False):
            trunc_normal_(self.mask_token, std=0.02)
        super().init_weights()

    def forward_masked(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Args: x (B, 3, H, W); mask (B, Hp, Wp). Returns: (B, D, Hp, Wp) feature maps per out index."""
        tokens, hw = self.patch_embed(x)  # (B, L, D)
        tokens = _blend_mask_token(tokens, mask, self.mask_token)
        return self.forward_tokens(self.add_position(tokens, hw), hw)

    def no_weight_decay(self) -> set[str]:
        return super().no_weight_decay() | {'mask_token'}


# -------------------------------------------------------------------------------------------------------- decode


@MODELS.register_module()
class SimMIMLinearDecoder(nn.Module):
    """1x1 conv to ``s*s*3`` channels + PixelShuffle(s): (B, C, H/s, W/s) -> (B, 3, H, W). Key ``decoder.0``.

    Args:
        in_channels: Encoder output width C (inferred from the backbone by :class:`SimMIM` when None).
        encoder_stride: Total stride s of the encoder output (32 for Swin, the patch size for ViT).
    """

    def __init__(self, in_channels: int | None = None, encoder_stride: int | None = None):
        super().__init__()
        if in_channels is None or encoder_stride is None:
            raise ValueError('SimMIMLinearDecoder needs in_channels and encoder_stride (SimMIM infers them)')
        self.decoder = nn.Sequential(
            nn.Conv2d(in_channels, encoder_stride**2 * 3, kernel_size=1), nn.PixelShuffle(encoder_stride)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(x)


# ---------------------------------------------------------------------------------------------------------- loss


@MODELS.register_module()
class SimMIMHead(nn.Module):
    """L1 between reconstruction and target over the masked pixels and all three channels.

    Args:
        patch_size: Model patch side p (the mask is given per patch; inferred from the backbone when None).
        loss: ``PixelReconstructionLoss(criterion='L1', channel=3)``.
    """

    def __init__(self, patch_size: int | None = None, loss: dict | None = None):
        super().__init__()
        if patch_size is None:
            raise ValueError('SimMIMHead needs patch_size (SimMIM infers it from the backbone)')
        self.patch_size = patch_size
        self.loss_module = MODELS.build(loss or dict(type='PixelReconstructionLoss', criterion='L1', channel=3))

    def loss(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Args: pred, target (B, 3, H, W); mask (B, Hp, Wp). Returns: scalar."""
        p = self.patch_size
        mask = mask.repeat_interleave(p, 1).repeat_interleave(p, 2).unsqueeze(1)  # (B, Hp, Wp) -> (B, 1, H, W)
        return self.loss_module(pred, target, mask.to(pred.dtype))


# ----------------------------------------------------------------------------------------------------- algorithm


@MODELS.register_module()
class SimMIM(BaseAlgorithm):
    """backbone = :class:`SimMIMSwinTransformer` or :class:`SimMIMViT`, neck = :class:`SimMIMLinearDecoder`, head =
    :class:`SimMIMHead`. The decoder's width and stride and the head's patch size come from the backbone; a
    ``target_generator`` (PixMIM's low-pass filter) changes the target image."""

    def _encoder_geometry(self) -> tuple[int, int, int]:
        b = self.backbone
        if isinstance(b, SwinTransformer):
            p = b.patch_embed.patch_size
            last = b.out_indices[-1]
            return b.num_features[last], p * 2**last, p
        return b.embed_dims, b.patch_size, b.patch_size

    def _neck_defaults(self) -> dict:
        width, stride, _ = self._encoder_geometry()
        return dict(in_channels=width, encoder_stride=stride)

    def _head_defaults(self) -> dict:
        return dict(patch_size=self._encoder_geometry()[2])

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        """Args: inputs normalised (B, 3, H, W); data_samples with ``mask`` (Hp, Wp). Returns: dict(loss=...)."""
        if not data_samples or 'mask' not in data_samples[0]:
            raise ValueError(
                'SimMIM needs a mask per sample: put SimMIMMaskGenerator in the pipeline before PackInputs'
            )
        mask = torch.stack([s.mask for s in data_samples]).to(inputs.device)  # (B, Hp, Wp)
        latent = self.backbone.forward_masked(inputs, mask)
        pred = self.neck(latent[-1])  # (B, C, H/s, W/s) -> (B, 3, H, W)
        return dict(loss=self.head.loss(pred, self.make_target(inputs), mask))
