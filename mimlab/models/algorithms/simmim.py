"""SimMIM: a Simple Framework for Masked Image Modeling (Xie et al., CVPR 2022).

Legend: ``B`` batch, ``H x W`` image, ``p`` model patch (4 for Swin, 16 for ViT), ``Hp x Wp = H/p x W/p`` patch
grid, ``L = Hp * Wp`` patches, ``M`` mask block side in pixels (32), ``s`` encoder output stride (32 for Swin, p for
ViT), ``C`` encoder output width, ``D`` patch-embedding width.

Order: mask (random ``M x M`` blocks, drawn in the data pipeline) -> encode (a learnable mask token replaces the
embeddings of masked patches; every patch, masked or not, goes through the encoder) -> decode (1x1 conv +
PixelShuffle back to pixels) -> L1 on the masked pixels against the target (the normalised input, or its low-pass
version with PixMIM's ``target_generator``). State-dict keys equal mmpretrain 1.2.0's ``SimMIM``
(``backbone.mask_token``, ``neck.decoder.0.*``; the head has no parameters).
"""

import math

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from torch import nn

from mimlab.registry import MODELS, TRANSFORMS

from ..backbones.base import MaskTokenBackbone
from ..backbones.swin import SwinTransformer
from ..backbones.vit import VisionTransformer
from .base import BaseAlgorithm, reconstruction_outputs

# ----------------------------------------------------------------------------------------------------------- mask


@TRANSFORMS.register_module()
class SimMIMMaskGenerator(BaseTransform):
    """Random block mask: exactly ``ceil(n * mask_ratio)`` of the ``n = (input_size / mask_patch_size)^2`` blocks,
    each block repeated to ``mask_patch_size / model_patch_size`` patches per side.

    With the defaults: 36 blocks of 32 px, 22 masked (61.1%), on the 48 x 48 grid of 4-px Swin patches. Blocks are
    drawn with ``np.random.permutation`` (numpy's global generator, which mmengine seeds per worker and
    ``ExactResumeSampler`` per sample), as mmpretrain.

    Args:
        input_size: Image side in pixels.
        mask_patch_size: Block side in pixels.
        model_patch_size: Encoder patch side in pixels.
        mask_ratio: Fraction of blocks masked, rounded up to whole blocks.

    Adds ``results['mask']``: int64 array (Hp, Wp), 1 = masked; ``PackInputs`` moves it to ``DataSample.mask``.
    """

    def __init__(
        self, input_size: int = 192, mask_patch_size: int = 32, model_patch_size: int = 4, mask_ratio: float = 0.6
    ):
        super().__init__()
        if input_size % mask_patch_size or mask_patch_size % model_patch_size:
            raise ValueError(
                f'input_size ({input_size}) must be a multiple of mask_patch_size ({mask_patch_size}), and that of '
                f'model_patch_size ({model_patch_size})'
            )
        if not 0.0 <= mask_ratio <= 1.0:
            raise ValueError(f'mask_ratio must be in [0, 1], got {mask_ratio}')
        self.input_size, self.mask_patch_size, self.model_patch_size = input_size, mask_patch_size, model_patch_size
        self.mask_ratio = mask_ratio
        self.rand_size = input_size // mask_patch_size  # blocks per side
        self.scale = mask_patch_size // model_patch_size  # patches per block side
        self.mask_count = int(math.ceil(self.rand_size**2 * mask_ratio))

    def transform(self, results: dict) -> dict:
        blocks = np.zeros(self.rand_size**2, dtype=np.int64)
        blocks[np.random.permutation(self.rand_size**2)[: self.mask_count]] = 1
        blocks = blocks.reshape(self.rand_size, self.rand_size)  # (n,) -> (H/M, W/M)
        results['mask'] = blocks.repeat(self.scale, axis=0).repeat(self.scale, axis=1)  # -> (Hp, Wp)
        return results

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(input_size={self.input_size}, mask_patch_size={self.mask_patch_size}, '
            f'model_patch_size={self.model_patch_size}, mask_ratio={self.mask_ratio})'
        )


# -------------------------------------------------------------------------------------------------------- encode


class SimMIMMaskedBackbone(MaskTokenBackbone):
    """Mixin: :meth:`forward_masked` replaces the patch embeddings of masked patches (mask site 0, before any position
    table) by a learnable ``mask_token``; every patch, masked or not, then goes through the encoder. Works on any
    :class:`~mimlab.models.backbones.base.BaseBackbone`; ``forward(x)`` stays the plain one."""

    def forward_masked(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Args:
            x: (B, 3, H, W) normalised images.
            mask: (B, Hp, Wp) on the grid of mask site 0, 1 = masked.

        Returns:
            Per out index the backbone's output; for Swin-B at 192 px (B, 1024, 6, 6).
        """

        def replace(f: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
            m = self.site_mask(mask, f, hw)  # (B, Hp, Wp) -> (B, L, 1) or (B, 1, Hp, Wp)
            return f * (1.0 - m) + self.mask_token.expand_as(f) * m

        return self.forward_stages(x, {0: replace})


@MODELS.register_module()
class SimMIMSwinTransformer(SimMIMMaskedBackbone, SwinTransformer):
    """Swin with SimMIM's :meth:`forward_masked`. Defaults are SimMIM's Swin-B pretraining ones (192 px, window 6,
    drop path 0.1, last stage out); other arguments as :class:`~mimlab.models.backbones.swin.SwinTransformer`."""

    def __init__(
        self,
        arch: str | dict = 'base',
        img_size: int = 192,
        window_size: int = 6,
        out_indices: tuple[int, ...] = (3,),
        drop_path_rate: float = 0.1,
        **kwargs,
    ):
        super().__init__(
            arch=arch,
            img_size=img_size,
            window_size=window_size,
            out_indices=out_indices,
            drop_path_rate=drop_path_rate,
            **kwargs,
        )
        self.add_mask_token(0)  # (1, 1, C); exempt from weight decay as the official SimMIM (mmpretrain decays it)


@MODELS.register_module()
class SimMIMViT(SimMIMMaskedBackbone, VisionTransformer):
    """ViT for SimMIM (the paper's ViT-B setting): the mask token replaces masked patch embeddings before the cls
    token and the position table are added; the output is the patch-token feature map (B, D, Hp, Wp).

    Defaults: ViT-B/16 at 224 px. The official ViT-B uses a shared relative position bias and LayerScale (BEiT-style)
    instead of the absolute table here; other arguments as :class:`~mimlab.models.backbones.vit.VisionTransformer`.
    """

    def __init__(
        self,
        arch: str | dict = 'b',
        img_size: int = 224,
        patch_size: int = 16,
        out_type: str = 'featmap',
        **kwargs,
    ):
        super().__init__(arch=arch, img_size=img_size, patch_size=patch_size, out_type=out_type, **kwargs)
        self.add_mask_token(0)


# -------------------------------------------------------------------------------------------------------- decode


@MODELS.register_module()
class SimMIMLinearDecoder(nn.Module):
    """The one-layer prediction head of SimMIM: a 1x1 conv to ``s*s*3`` channels, then PixelShuffle(s).

    Args:
        in_channels: Encoder output width C (inferred from the backbone by :class:`SimMIM` when None).
        encoder_stride: Total stride s of the encoder output (32 for Swin, the patch size for ViT; inferred too).

    Keys: ``decoder.0.weight`` (s*s*3, C, 1, 1), ``decoder.0.bias``.
    """

    def __init__(self, in_channels: int | None = None, encoder_stride: int | None = None):
        super().__init__()
        if in_channels is None or encoder_stride is None:
            raise ValueError('SimMIMLinearDecoder needs in_channels and encoder_stride (SimMIM infers them)')
        self.decoder = nn.Sequential(
            nn.Conv2d(in_channels, encoder_stride**2 * 3, kernel_size=1), nn.PixelShuffle(encoder_stride)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H/s, W/s) -> (B, s*s*3, H/s, W/s) -> (B, 3, H, W)."""
        return self.decoder(x)


# ---------------------------------------------------------------------------------------------------------- loss


@MODELS.register_module()
class SimMIMHead(nn.Module):
    """L1 between reconstruction and target over the masked pixels and all three channels.

    The loss is ``sum(|pred - target| * mask) / (masked pixels * 3)``: a per-pixel mean on the normalised image, no
    per-patch normalisation; visible pixels do not count.

    Args:
        patch_size: Model patch side p (the mask comes per patch; inferred from the backbone when None).
        loss: Config of the pixel loss, ``PixelReconstructionLoss(criterion='L1', channel=3)`` by default.
    """

    def __init__(self, patch_size: int | None = None, loss: dict | None = None):
        super().__init__()
        if patch_size is None:
            raise ValueError('SimMIMHead needs patch_size (SimMIM infers it from the backbone)')
        self.patch_size = patch_size
        self.loss_module = MODELS.build(loss or dict(type='PixelReconstructionLoss', criterion='L1', channel=3))

    def loss(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Args:
            pred: (B, 3, H, W) reconstruction.
            target: (B, 3, H, W) target image.
            mask: (B, Hp, Wp), 1 = masked.

        Returns:
            Scalar loss.
        """
        p = self.patch_size
        mask = mask.repeat_interleave(p, 1).repeat_interleave(p, 2).unsqueeze(1)  # (B, Hp, Wp) -> (B, 1, H, W)
        return self.loss_module(pred, target, mask.to(pred.dtype))


# ----------------------------------------------------------------------------------------------------- algorithm


@MODELS.register_module()
class SimMIM(BaseAlgorithm):
    """SimMIM pretraining.

    backbone = any backbone with :class:`SimMIMMaskedBackbone` (:class:`SimMIMSwinTransformer`, :class:`SimMIMViT`),
    neck = :class:`SimMIMLinearDecoder`, head = :class:`SimMIMHead`. The decoder's width and stride come from the
    backbone's ``out_channels[-1]`` / ``out_strides[-1]`` and the head's patch size from the stride of its mask site,
    so configs do not restate them. A ``target_generator`` (PixMIM's ``LowFreqTargetGenerator``) replaces the target
    image by its low-pass version. ``extract_feat(inputs)`` gives the plain (unmasked) encoder features.
    """

    def _neck_defaults(self) -> dict:
        b = self.backbone
        return dict(in_channels=b.out_channels[-1], encoder_stride=b.out_strides[-1])

    def _head_defaults(self) -> dict:
        return dict(patch_size=self.backbone.site_strides[self.backbone.mask_site])

    def loss(self, inputs: torch.Tensor, data_samples: list) -> dict:
        """Args:
            inputs: (B, 3, H, W) normalised images.
            data_samples: One ``DataSample`` per image with ``mask`` (Hp, Wp).

        Returns:
            ``dict(loss=...)``.
        """
        mask = stack_sample_masks(inputs, data_samples, type(self).__name__)
        latent = self.backbone.forward_masked(inputs, mask)[-1]  # (B, C, H/s, W/s)
        pred = self.neck(latent)  # -> (B, 3, H, W)
        return dict(loss=self.head.loss(pred, self.make_target(inputs), mask))

    @torch.no_grad()
    def reconstruct(self, inputs: torch.Tensor, data_samples: list) -> dict:
        """Reconstruction for visualisation with the masks of ``data_samples`` (as :meth:`loss`); returns
        :func:`~mimlab.models.algorithms.base.reconstruction_outputs` (``masked``: masked pixels at 0, the mean
        colour; the encoder itself gets its mask token there)."""
        mask = stack_sample_masks(inputs, data_samples, type(self).__name__)
        pred = self.neck(self.backbone.forward_masked(inputs, mask)[-1])  # (B, 3, H, W)
        p = self.head.patch_size
        mask_img = mask.repeat_interleave(p, 1).repeat_interleave(p, 2).unsqueeze(1).to(inputs.dtype)  # (B, 1, H, W)
        return reconstruction_outputs(inputs, self.make_target(inputs), pred, mask_img, inputs * (1 - mask_img))


def stack_sample_masks(inputs: torch.Tensor, data_samples: list, algorithm: str) -> torch.Tensor:
    """The pipeline's per-sample masks as one (B, h, w) tensor on the inputs' device."""
    if not data_samples or 'mask' not in data_samples[0]:
        raise ValueError(
            f'{algorithm} needs a mask per sample: put SimMIMMaskGenerator in the pipeline before PackInputs'
        )
    return torch.stack([s.mask for s in data_samples]).to(inputs.device)  # B x (h, w) -> (B, h, w)
