"""A2MIM: Architecture-Agnostic Masked Image Modeling (Li et al., ICML 2023), as openmixup implements it.

Legend: ``B`` batch, ``H x W`` image, ``h x w`` mask grid = feature map at the mask site (14 x 14 for ResNet l3 and ViT
at 224 px, 7 x 7 for ConvNeXt l3), ``C`` width at the mask site, ``L = h * w`` patch tokens, ``D`` ViT width,
``s`` encoder output stride, ``C_out`` encoder output width.

The image is masked twice:

1. in pixels: every masked 32 x 32 block is set to the image's mean colour (per image and channel, over the whole
   normalised image), not to zero, so the input keeps its first-order statistics;
2. in features: a learnable mask token is *added* to the feature map at the input of stage ``mask_layer`` (the mask is
   given at that resolution), optionally after scaling the masked features by a learnable ``mask_gamma``.

Order: mask (random 32-px blocks in the data pipeline, :class:`~mimlab.models.algorithms.simmim.SimMIMMaskGenerator`)
-> fill (mean colour) -> encode (token at stage ``mask_layer``) -> decode (SimMIM's 1x1 conv + PixelShuffle) ->
loss (focal L1 on masked pixels + Fourier loss) against the clean normalised image (or a ``target_generator``'s).

openmixup fills in the data pipeline after normalisation; mimlab normalises on the device, so the fill happens here,
on the normalised batch, with the same result. Key names: ``backbone.mask_token``, ``backbone.mask_gamma``,
``neck.decoder.0.*`` (openmixup: ``neck.decoder_pred.0.*``; :mod:`mimlab.converters.a2mim` renames it).
"""

import torch
from timm.layers import trunc_normal_
from torch import nn

from mimlab.registry import MODELS

from ..backbones.base import MaskTokenBackbone
from ..backbones.convnext import ConvNeXt
from ..backbones.resnet import ResNet
from ..backbones.vit import VisionTransformer
from .base import BaseAlgorithm, reconstruction_outputs
from .simmim import stack_sample_masks

# ---------------------------------------------------------------------------------------------------------- fill


def upsample_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest upsampling of a block mask by whole pixels: (B, h, w) -> (B, 1, H, W)."""
    (h, w), (H, W) = mask.shape[-2:], size
    if H % h or W % w:
        raise ValueError(f'image size {(H, W)} is not a multiple of the mask grid {(h, w)}')
    return mask.repeat_interleave(H // h, 1).repeat_interleave(W // w, 2).unsqueeze(1)


def fill_mean_rgb(img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Set the masked pixels of each image to that image's per-channel mean over all its pixels.

    Args:
        img: (B, 3, H, W) normalised images.
        mask: (B, h, w), 1 = masked; each cell covers (H/h) x (W/w) pixels.

    Returns:
        (B, 3, H, W); visible pixels are unchanged bit for bit.
    """
    mean = img.mean(dim=(2, 3), keepdim=True)  # (B, 3, H, W) -> (B, 3, 1, 1)
    return torch.where(upsample_mask(mask, img.shape[-2:]).bool(), mean, img)


# -------------------------------------------------------------------------------------------------------- encode


class A2MIMMaskedBackbone(MaskTokenBackbone):
    """Mixin: the residual mask token of openmixup's ``forward_mask`` at mask site ``mask_layer`` of any
    :class:`~mimlab.models.backbones.base.BaseBackbone`; ``forward(x)`` stays the plain one.

    With ``replace``, masked features are swapped for the token (SimMIM). Otherwise the token is added,
    ``x * (1 - m) + gamma * x * m + token * m``, with ``gamma`` = ``mask_gamma`` when ``mask_init > 0`` (learnable,
    initialised to ``mask_init``; (1, C, 1, 1) on a map, (C,) on tokens as openmixup's) and 1 when not.
    """

    def add_a2mim_mask_token(self, mask_layer: int, replace: bool, mask_init: float) -> None:
        self.add_mask_token(mask_layer)
        self.mask_layer, self.replace = mask_layer, replace
        c = self.site_channels[mask_layer]
        gamma_shape = self.site_param_shape(mask_layer) if self.feature_layout == 'map' else (c,)
        self.mask_gamma = (
            nn.Parameter(torch.full(gamma_shape, float(mask_init))) if mask_init > 0 and not replace else None
        )

    def apply_mask_token(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """x: features (B, C, h, w) or tokens (B, L, D); m: the mask broadcast to x, (B, 1, h, w) or (B, L, 1)."""
        if self.replace:
            return x * (1.0 - m) + self.mask_token * m
        if self.mask_gamma is not None:
            x = x * (1.0 - m) + (x * m) * self.mask_gamma
        return x + self.mask_token * m

    def forward_masked(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Args: x (B, 3, H, W) filled images; mask (B, h, w) on the grid of site ``mask_layer``, 1 = masked.

        Returns: per out index the backbone's output; for ResNet-50 at 224 px (B, 2048, 7, 7).
        """
        hook = lambda f, hw: self.apply_mask_token(f, self.site_mask(mask, f, hw))  # noqa: E731
        return self.forward_stages(x, {self.mask_layer: hook})


@MODELS.register_module()
class MIMResNet(A2MIMMaskedBackbone, ResNet):
    """ResNet whose :meth:`forward_masked` adds the mask token to the input of ``layer{mask_layer + 1}``.

    ``mask_layer=3`` ("l3", the A2MIM default) masks the layer3 output: stride 16, 1024 channels for ResNet-50+;
    ``mask_layer=0`` masks the stem output (stride 4). Other arguments as
    :class:`~mimlab.models.backbones.resnet.ResNet`.

    Args:
        mask_layer: 0-3, the stage whose input receives the token.
        replace: Replace masked features by the token instead of adding it.
        mask_init: > 0 (and not ``replace``): learnable per-channel ``mask_gamma`` (1, C, 1, 1) with this init.
    """

    def __init__(self, depth=50, mask_layer: int = 3, replace: bool = False, mask_init: float = 0.0, **kwargs):
        super().__init__(depth=depth, **kwargs)
        self.add_a2mim_mask_token(mask_layer, replace, mask_init)


@MODELS.register_module()
class MIMConvNeXt(A2MIMMaskedBackbone, ConvNeXt):
    """ConvNeXt whose :meth:`forward_masked` adds the mask token right after ``downsample_layers[mask_layer]``.

    ``mask_layer=3`` masks after the stride-32 downsample of the last stage (7 x 7 at 224 px), one stage later than
    ResNet's l3. Defaults: normalised last-stage map out (``gap_before_final_norm=False``); other arguments as
    :class:`~mimlab.models.backbones.convnext.ConvNeXt`.

    Args:
        mask_layer: 0-3, the stage whose downsampled input receives the token.
        replace: Replace masked features by the token instead of adding it.
        mask_init: > 0 (and not ``replace``): learnable per-channel ``mask_gamma`` (1, C, 1, 1) with this init.
        mask_token_std: Init of the mask token: 0 (default) starts it at exactly 0 as openmixup's ``MIMConvNeXt``
            does (its ``trunc_normal_init`` call on a bare parameter changes nothing); 0.02 draws trunc-normal(0.02),
            as the other masked backbones and mimlab's earlier default.
    """

    def __init__(
        self,
        arch='tiny',
        mask_layer: int = 3,
        replace: bool = False,
        mask_init: float = 0.0,
        out_indices=(3,),
        gap_before_final_norm: bool = False,
        mask_token_std: float = 0.0,
        **kwargs,
    ):
        super().__init__(arch=arch, out_indices=out_indices, gap_before_final_norm=gap_before_final_norm, **kwargs)
        if mask_token_std < 0:
            raise ValueError(f'mask_token_std must be >= 0, got {mask_token_std}')
        self.mask_token_std = float(mask_token_std)
        self.add_a2mim_mask_token(mask_layer, replace, mask_init)


@MODELS.register_module()
class A2MIMViT(A2MIMMaskedBackbone, VisionTransformer):
    """ViT for A2MIM: the mask token is added to the patch embeddings (``mask_layer=0``: before the cls token and the
    position table) or to the patch tokens entering block ``mask_layer - 1`` (``mask_layer=k > 0``).

    Defaults: openmixup's A2MIM ViT-B (LayerScale 0.1, a BEiT-style relative position bias in every block as
    openmixup's ``use_window=True``, besides the absolute table; drop path by config; patch-token map out).
    ``mask_gamma`` is (D,), as openmixup's.
    """

    def __init__(
        self,
        arch: str | dict = 'b',
        img_size: int = 224,
        patch_size: int = 16,
        mask_layer: int = 0,
        replace: bool = False,
        mask_init: float = 0.0,
        out_type: str = 'featmap',
        layer_scale_init_value: float = 0.1,
        use_rel_pos_bias: bool = True,
        **kwargs,
    ):
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            out_type=out_type,
            layer_scale_init_value=layer_scale_init_value,
            use_rel_pos_bias=use_rel_pos_bias,
            **kwargs,
        )
        self.add_a2mim_mask_token(mask_layer, replace, mask_init)


# ---------------------------------------------------------------------------------------------------------- loss


@MODELS.register_module()
class A2MIMHead(nn.Module):
    """Spatial loss on the masked pixels plus an optional Fourier-domain loss.

    Spatial: ``sum(l(pred, target) * M_s) / (sum(M_s) + 1e-5) / 3`` with ``M_s = M + (1 - M) * unmask_weight`` and M
    the pixel mask (B, 1, H, W); M counts pixels, hence the division by the 3 channels.

    Fourier (``fft_weight > 0``): visible pixels of the prediction are first blended towards a replacement,
    ``pred' = pred * M_f + r * (1 - M_f)`` with ``M_f = M + (1 - M) * fft_unmask_weight``, so the spectrum of the
    masked regions is judged in the context of the real image. ``fft_focal``: :class:`FocalFrequencyLoss` with batch-
    mean spectra, log weights and a global maximum; else the spatial loss on the complex orthonormal spectra, mean.

    Args:
        loss: Config of the element-wise loss, ``FocalL1Loss`` (alpha 0.2, gamma 1) for CNNs; ``gamma=0`` for ViT's L1.
        in_channels: Image channels (the divisor above).
        unmask_weight: Weight of visible pixels in the spatial loss (0 in every A2MIM recipe).
        fft_weight: Weight of the Fourier loss (0.5 / 0.1 / 0 by recipe).
        fft_focal: Focal frequency loss instead of the spatial loss on spectra.
        fft_unmask_replace: ``r``: 'mixed' (``0.5 * pred.detach() + 0.5 * target``), 'target', 'prediction'
            (``pred.detach()``), 'mean' (the target's per-image channel mean) or None ('target' when the Fourier loss
            is on).
        fft_unmask_weight: How much of the live prediction visible pixels keep in ``pred'`` (1e-3 ResNet, 0 ViT).
        fft_reweight: Weight the non-focal spectral loss by its own detached value.
    """

    REPLACE_MODES = (None, 'target', 'prediction', 'mean', 'mixed')

    def __init__(
        self,
        loss: dict | None = None,
        in_channels: int = 3,
        unmask_weight: float = 0.0,
        fft_weight: float = 0.0,
        fft_focal: bool = False,
        fft_unmask_replace: str | None = None,
        fft_unmask_weight: float = 0.0,
        fft_reweight: bool = False,
    ):
        super().__init__()
        if fft_unmask_replace not in self.REPLACE_MODES:
            raise ValueError(f'fft_unmask_replace must be one of {self.REPLACE_MODES}, got {fft_unmask_replace!r}')
        if not (0 <= unmask_weight <= 1 and 0 <= fft_unmask_weight <= 1):
            raise ValueError(f'unmask_weight ({unmask_weight}) and fft_unmask_weight ({fft_unmask_weight}) need [0, 1]')
        self.in_channels, self.unmask_weight = in_channels, unmask_weight
        self.fft_weight, self.fft_focal, self.fft_reweight = fft_weight, fft_focal, fft_reweight
        self.fft_unmask_replace = fft_unmask_replace or ('target' if fft_weight > 0 else None)
        self.fft_unmask_weight = fft_unmask_weight
        self.criterion = MODELS.build(loss or dict(type='FocalL1Loss', alpha=0.2, gamma=1.0, activate='sigmoid'))
        self.fft_loss = (
            MODELS.build(dict(type='FocalFrequencyLoss', ave_spectrum=True, log_matrix=True, batch_matrix=True))
            if fft_focal
            else None
        )

    def _replacement(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.fft_unmask_replace == 'mixed':
            return 0.5 * pred.detach() + 0.5 * target
        if self.fft_unmask_replace == 'prediction':
            return pred.detach()
        if self.fft_unmask_replace == 'mean':
            return target.mean(dim=(2, 3), keepdim=True).expand_as(target)
        return target

    def loss(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Args:
            pred: (B, 3, H, W) reconstruction.
            target: (B, 3, H, W) target image.
            mask: (B, h, w), 1 = masked.

        Returns:
            Scalar loss.
        """
        # the spectra need fp32: cuFFT in half precision takes power-of-two sizes only, and 224 is not one
        pred, target = pred.float(), target.float()
        m = upsample_mask(mask, pred.shape[-2:]).to(pred.dtype)  # (B, h, w) -> (B, 1, H, W)
        m_s = m + (1.0 - m) * self.unmask_weight
        loss = (self.criterion(pred, target) * m_s).sum() / (m_s.sum() + 1e-5) / self.in_channels
        if self.fft_weight <= 0:
            return loss
        if self.fft_unmask_weight < 1:
            m_f = m + (1.0 - m) * self.fft_unmask_weight
            pred = pred * m_f + self._replacement(pred, target) * (1.0 - m_f)
        if self.fft_focal:
            loss_fft = self.fft_loss(pred, target)
        else:
            f_pred = torch.fft.fftn(pred, dim=(2, 3), norm='ortho')  # (B, 3, H, W) complex
            f_targ = torch.fft.fftn(target, dim=(2, 3), norm='ortho')
            loss_fft = self.criterion(f_pred, f_targ)
            loss_fft = (loss_fft.detach() * loss_fft).mean() if self.fft_reweight else loss_fft.mean()
        return loss + self.fft_weight * loss_fft


# ----------------------------------------------------------------------------------------------------- algorithm


@MODELS.register_module()
class A2MIM(BaseAlgorithm):
    """A2MIM pretraining.

    backbone = :class:`MIMResNet`, :class:`MIMConvNeXt` or :class:`A2MIMViT`; neck =
    :class:`~mimlab.models.algorithms.simmim.SimMIMLinearDecoder` (width and stride inferred from the backbone;
    initialised trunc-normal 0.02 with zero bias, as openmixup's neck); head = :class:`A2MIMHead`. A
    ``target_generator`` (PixMIM's ``LowFreqTargetGenerator``) replaces the target image by its low-pass version.
    ``extract_feat(inputs)`` gives the plain (unmasked) encoder features.
    """

    def _neck_defaults(self) -> dict:
        b = self.backbone
        return dict(in_channels=b.out_channels[-1], encoder_stride=b.out_strides[-1])

    def init_weights(self) -> None:
        # before the children's and any 'Pretrained' init_cfg, which mmengine applies last and must win
        if not getattr(self, '_is_init', False):
            for m in self.neck.modules():
                if isinstance(m, nn.Conv2d):
                    trunc_normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)
        super().init_weights()

    def loss(self, inputs: torch.Tensor, data_samples: list) -> dict:
        """Args:
            inputs: (B, 3, H, W) normalised images.
            data_samples: One ``DataSample`` per image with ``mask`` (h, w) at the backbone's mask site.

        Returns:
            ``dict(loss=...)``.
        """
        mask = stack_sample_masks(inputs, data_samples, type(self).__name__)  # (B, h, w)
        filled = fill_mean_rgb(inputs, mask)  # masking in pixels
        latent = self.backbone.forward_masked(filled, mask)[-1]  # masking in features -> (B, C_out, H/s, W/s)
        pred = self.neck(latent)  # -> (B, 3, H, W)
        if pred.shape[-2:] != inputs.shape[-2:]:
            raise ValueError(f'reconstruction {tuple(pred.shape[-2:])} and input {tuple(inputs.shape[-2:])} differ')
        return dict(loss=self.head.loss(pred, self.make_target(inputs), mask))

    @torch.no_grad()
    def reconstruct(self, inputs: torch.Tensor, data_samples: list) -> dict:
        """Reconstruction for visualisation with the masks of ``data_samples`` (as :meth:`loss`); returns
        :func:`~mimlab.models.algorithms.base.reconstruction_outputs` (``masked``: the mean-RGB filled image the
        encoder gets)."""
        mask = stack_sample_masks(inputs, data_samples, type(self).__name__)
        filled = fill_mean_rgb(inputs, mask)
        pred = self.neck(self.backbone.forward_masked(filled, mask)[-1])  # (B, 3, H, W)
        mask_img = upsample_mask(mask, inputs.shape[-2:])  # (B, 1, H, W)
        return reconstruction_outputs(inputs, self.make_target(inputs), pred, mask_img, filled)
