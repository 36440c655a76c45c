"""PixMIM (Liu et al. 2023, arXiv 2303.02416): low-frequency pixel targets, as a plug-in for pixel MIM.

Legend: ``B`` batch, ``H x W`` image, ``r`` filter radius in frequency bins.

The target is the input image with its high frequencies removed by an ideal circular low-pass filter in the 2-D
Fourier domain. Any algorithm built on :class:`~mimlab.models.algorithms.base.BaseAlgorithm` that reconstructs pixels
takes a ``target_generator`` and becomes "X + PixMIM"; :class:`PixMIM` is MAE with one, under mmselfsup's name and
state-dict keys (``target_generator.low_pass_filter``).

Two filter modes:

- default (``reference_compatible=False``): the filter is centred on the DC bin of the shifted spectrum (index
  ``(H//2, W//2)``), so it is Hermitian-symmetric and the filtered image is real; we take the real part.
- ``reference_compatible=True`` reproduces mmselfsup 1.0 exactly: the centre is ``((H-1)/2, (W-1)/2)``, half a bin
  off DC, the inverse FFT skips ``ifftshift`` and the target is ``abs()`` of the complex result (which also folds
  negative ringing to positive).
"""

import torch
from torch import nn

from mimlab.registry import MODELS

from .mae import MAE


def low_pass_filter(h: int, w: int, radius: float, reference_compatible: bool = False) -> torch.Tensor:
    """The ideal circular low-pass mask over a ``fftshift``-ed spectrum.

    Returns:
        float32 (H, W), 1 inside the radius (distance <= r), 0 outside.
    """
    ci, cj = ((h - 1) / 2, (w - 1) / 2) if reference_compatible else (h // 2, w // 2)
    i = torch.arange(h, dtype=torch.float64).view(h, 1)
    j = torch.arange(w, dtype=torch.float64).view(1, w)
    return (((i - ci) ** 2 + (j - cj) ** 2) <= radius**2).float()  # (H, 1) + (1, W) -> (H, W)


@MODELS.register_module()
class LowFreqTargetGenerator(nn.Module):
    """Low-pass filtered target image.

    Args:
        radius: Filter radius in frequency bins (40 at 224 px in the paper).
        img_size: Input side (int) or (H, W); the filter is built once for it.
        reference_compatible: Reproduce mmselfsup's off-centre filter and ``abs()`` (see the module docstring).
    """

    def __init__(self, radius: float = 40, img_size: int | tuple[int, int] = 224, reference_compatible: bool = False):
        super().__init__()
        h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
        self.radius = radius
        self.reference_compatible = reference_compatible
        # persistent, 3 channels, as mmselfsup's checkpoint key target_generator.low_pass_filter (3, H, W)
        self.register_buffer(
            'low_pass_filter', low_pass_filter(h, w, radius, reference_compatible).expand(3, h, w).clone()
        )

    @torch.no_grad()
    def forward(self, inputs: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """Args: inputs normalised (B, 3, H, W); mean, std (1, 3, 1, 1) of the data preprocessor.

        Returns: the low-pass image (B, 3, H, W), normalised with the same mean/std.
        """
        if inputs.shape[-2:] != self.low_pass_filter.shape[-2:]:
            raise ValueError(
                f'LowFreqTargetGenerator was built for {tuple(self.low_pass_filter.shape[-2:])} images, '
                f'got {tuple(inputs.shape[-2:])}; set img_size in its config'
            )
        img = inputs.float() * std + mean  # de-normalise: (B, 3, H, W) in pixel units
        spec = torch.fft.fftshift(torch.fft.fft2(img), dim=(-2, -1)) * self.low_pass_filter  # DC at the centre
        if self.reference_compatible:
            out = torch.fft.ifft2(spec).abs()  # no ifftshift: abs() cancels the (-1)^(x+y) modulation
        else:
            out = torch.fft.ifft2(torch.fft.ifftshift(spec, dim=(-2, -1))).real
        return ((out - mean) / std).to(inputs.dtype)


@MODELS.register_module()
class PixMIM(MAE):
    """MAE whose target is PixMIM's low-frequency image (mmselfsup ``PixMIM`` keys). Needs a ``target_generator``."""

    def __init__(self, *args, target_generator=None, **kwargs):
        if target_generator is None:
            raise ValueError('PixMIM needs target_generator=dict(type="LowFreqTargetGenerator", radius=40, ...)')
        super().__init__(*args, target_generator=target_generator, **kwargs)
