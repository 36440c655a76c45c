"""Pixel-reconstruction losses shared by the pixel-target MIM algorithms."""

import torch
import torch.nn.functional as F
from torch import nn

from mimlab.registry import MODELS


@MODELS.register_module()
class PixelReconstructionLoss(nn.Module):
    """Mean L1/L2 error, averaged over the masked positions only.

    For a 3-D prediction (B, L, P) the error is first averaged over P (per patch); then
    ``sum(err * mask) / sum(mask) / channel``. Without a mask it is the plain mean.

    Args:
        criterion: 'L1' or 'L2'.
        channel: Divisor for a mask that does not repeat over channels (SimMIM's L1 over 3 channels uses 3).
    """

    def __init__(self, criterion: str = 'L2', channel: int | None = None):
        super().__init__()
        if criterion not in ('L1', 'L2'):
            raise ValueError(f'criterion must be "L1" or "L2", got {criterion!r}')
        self.criterion = criterion
        self.channel = channel if channel is not None else 1

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        fn = F.l1_loss if self.criterion == 'L1' else F.mse_loss
        err = fn(pred, target, reduction='none')
        if err.dim() == 3:
            err = err.mean(dim=-1)  # (B, L, P) -> (B, L)
        if mask is None:
            return err.mean()
        return (err * mask).sum() / mask.sum() / self.channel
