"""Element-wise focal L1 and the focal frequency loss, as A2MIM uses them.

Legend: ``B`` batch, ``C`` channels, ``H x W`` image, ``e = |pred - target|`` (the modulus for complex spectra).

- :class:`FocalL1Loss`: the focal regression loss of "Delving into Deep Imbalanced Regression" (Yang et al. 2021),
  ``e * (2 * sigmoid(alpha * e) - 1) ** gamma`` (or ``tanh(alpha * e) ** gamma``): small errors are damped, so the
  loss concentrates on the pixels that are still far off. ``gamma=0`` is the plain L1.
- :class:`FocalFrequencyLoss`: "Focal Frequency Loss for Image Reconstruction and Synthesis" (Jiang et al. 2021),
  the squared spectral distance weighted by a detached, normalised map of that same distance, so the frequencies the
  model reconstructs worst dominate.
"""

import torch
from torch import nn

from mimlab.registry import MODELS


def focal_l1(
    pred: torch.Tensor, target: torch.Tensor, alpha: float = 0.2, gamma: float = 1.0, activate: str = 'sigmoid'
) -> torch.Tensor:
    """Element-wise focal L1; real or complex inputs (the error is the modulus), a real tensor of the same shape."""
    err = (pred - target).abs()
    if gamma == 0:
        return err
    scale = 2.0 * torch.sigmoid(alpha * err) - 1.0 if activate == 'sigmoid' else torch.tanh(alpha * err)
    return err * scale**gamma


@MODELS.register_module()
class FocalL1Loss(nn.Module):
    """Focal L1 regression loss.

    Args:
        alpha: Slope of the modulating function (0.2 in A2MIM).
        gamma: Its exponent (1 in A2MIM); 0 gives the plain L1 ``|pred - target|``.
        activate: 'sigmoid' (``2 * sigmoid(alpha * e) - 1``) or 'tanh' (``tanh(alpha * e)``).
        residual: Add the plain L1 to the focal term.
        reduction: 'none' (element-wise, for masked means), 'mean' or 'sum'.
        loss_weight: Factor on the result.
    """

    def __init__(
        self,
        alpha: float = 0.2,
        gamma: float = 1.0,
        activate: str = 'sigmoid',
        residual: bool = False,
        reduction: str = 'none',
        loss_weight: float = 1.0,
    ):
        super().__init__()
        if activate not in ('sigmoid', 'tanh'):
            raise ValueError(f"activate must be 'sigmoid' or 'tanh', got {activate!r}")
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        self.alpha, self.gamma, self.activate = alpha, gamma, activate
        self.residual, self.reduction, self.loss_weight = residual, reduction, loss_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor, reduction: str | None = None) -> torch.Tensor:
        """Args: pred, target (any shape, real or complex). Returns: the loss, reduced by ``reduction`` (or the
        module's default)."""
        loss = focal_l1(pred, target, self.alpha, self.gamma, self.activate)
        if self.residual:
            loss = loss + (pred - target).abs()
        reduction = reduction or self.reduction
        if reduction == 'mean':
            loss = loss.mean()
        elif reduction == 'sum':
            loss = loss.sum()
        return self.loss_weight * loss


@MODELS.register_module()
class FocalFrequencyLoss(nn.Module):
    """Focal frequency loss on the 2-D orthonormal spectrum of each channel.

    ``D = |F(pred) - F(target)|^2`` per frequency; the weight is ``W = sqrt(D)^alpha``, optionally ``log(W + 1)``,
    divided by its maximum, NaNs set to 0, clamped to [0, 1] and detached; the loss is ``mean(W * D)``.

    Args:
        loss_weight: Factor on the result.
        alpha: Exponent of the spectral distance in the weight.
        ave_spectrum: Compare the batch-mean spectra (one (1, C, H, W) map) instead of each image's.
        log_matrix: Weight with ``log(W + 1)``, which flattens the weight's dynamic range.
        batch_matrix: Normalise the weight by its maximum over everything (batch, channels, frequencies). Without it,
            each image's channel is normalised by its own maximum over the frequencies. (openmixup's per-map branch
            indexes a 4-D tensor with five axes and fails; this is what it means to do.)
    """

    def __init__(
        self,
        loss_weight: float = 1.0,
        alpha: float = 1.0,
        ave_spectrum: bool = False,
        log_matrix: bool = False,
        batch_matrix: bool = False,
    ):
        super().__init__()
        self.loss_weight, self.alpha = loss_weight, alpha
        self.ave_spectrum, self.log_matrix, self.batch_matrix = ave_spectrum, log_matrix, batch_matrix

    @torch.no_grad()
    def spectrum_weight(self, diff: torch.Tensor) -> torch.Tensor:
        """The detached focal weight in [0, 1] of a complex spectral difference (B, C, H, W)."""
        w = torch.sqrt(diff.real**2 + diff.imag**2) ** self.alpha
        if self.log_matrix:
            w = torch.log(w + 1.0)
        w = w / (w.max() if self.batch_matrix else w.amax(dim=(-2, -1), keepdim=True))
        return torch.nan_to_num(w, nan=0.0).clamp(0.0, 1.0)  # 0/0 when prediction equals target

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: pred, target (B, C, H, W) real. Returns: the scalar loss."""
        f_pred = torch.fft.fft2(pred, dim=(2, 3), norm='ortho')  # (B, C, H, W) complex
        f_targ = torch.fft.fft2(target, dim=(2, 3), norm='ortho')
        if self.ave_spectrum:
            f_pred, f_targ = f_pred.mean(0, keepdim=True), f_targ.mean(0, keepdim=True)  # -> (1, C, H, W)
        diff = f_pred - f_targ
        distance = diff.real**2 + diff.imag**2
        return self.loss_weight * (self.spectrum_weight(diff.detach()) * distance).mean()
