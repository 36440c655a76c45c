import torch
import torch.nn.functional as F
from timm.loss import BinaryCrossEntropy
from torch import nn

from mimlab.registry import MODELS


@MODELS.register_module()
class CrossEntropyLoss(nn.Module):
    """Cross entropy for hard (B,) or soft (B, K) targets, with optional label smoothing.

    Smoothing follows mmpretrain's ``LabelSmoothLoss(mode='original')`` and timm:
    ``target = (1 - eps) * target + eps / K``. With Mixup/CutMix the smoothing is applied by the batch augment
    (timm's ``Mixup(label_smoothing=...)``), so configs then keep ``label_smooth_val=0`` here.
    """

    def __init__(self, label_smooth_val: float = 0.0, loss_weight: float = 1.0):
        super().__init__()
        if not 0 <= label_smooth_val < 1:
            raise ValueError(f'label_smooth_val must be in [0, 1), got {label_smooth_val}')
        self.label_smooth_val = label_smooth_val
        self.loss_weight = loss_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        num_classes = logits.shape[-1]
        if target.dim() == 1:
            if self.label_smooth_val == 0:
                return self.loss_weight * F.cross_entropy(logits, target)
            target = F.one_hot(target, num_classes).to(logits.dtype)
        if self.label_smooth_val > 0:
            target = target * (1 - self.label_smooth_val) + self.label_smooth_val / num_classes
        loss = -(target * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()
        return self.loss_weight * loss


# Binary cross-entropy on (mixed) soft targets, the ResNet Strikes Back loss: timm's class as it is
# (``loss=dict(type='BinaryCrossEntropy', smoothing=0.0, sum_classes=True)``). For logits ``x`` (B, K) and targets
# ``y`` (B, K) (Mixup/CutMix: ``lam * onehot(a) + (1 - lam) * onehot(b)``; class indices (B,) are one-hot encoded):
# ``l = -(y log sigmoid(x) + (1 - y) log(1 - sigmoid(x)))``. ``sum_classes=True`` sums ``l`` over the K classes and
# averages over the batch, as openmixup's ``CrossEntropyLoss(use_sigmoid=True)`` with ``avg_factor=B`` does in the A2MIM
# RSB recipes; timm's default (False) averages over all B x K entries, K times smaller. Mind timm's default
# ``smoothing=0.1``: the RSB recipes set 0.
MODELS.register_module(module=BinaryCrossEntropy)
