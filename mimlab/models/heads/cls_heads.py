"""Classification heads and the linear-probe BatchNorm neck, with mmpretrain's key names.

Legend: ``B`` batch, ``D`` feature width, ``K`` classes.
"""

import torch
from torch import nn

from mimlab.registry import MODELS


@MODELS.register_module()
class ClsBatchNormNeck(nn.Module):
    """BatchNorm1d without affine parameters before the linear probe (MAE's linear-probing "head" trick).

    Keys: ``bn.running_mean``, ``bn.running_var``, ``bn.num_batches_tracked``. (B, D) -> (B, D).
    """

    def __init__(self, input_features: int, affine: bool = False, eps: float = 1e-6):
        super().__init__()
        self.bn = nn.BatchNorm1d(input_features, affine=affine, eps=eps)

    def forward(self, feats: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(self.bn(f) for f in feats)


@MODELS.register_module()
class GlobalAveragePooling(nn.Module):
    """Average over the spatial positions of feature maps: (B, C, H, W) -> (B, C). No parameters."""

    def forward(self, feats: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(f.mean(dim=(2, 3)) if f.dim() == 4 else f for f in feats)


class _ClsHead(nn.Module):
    """Shared logic: last feature of the tuple -> logits; soft or hard targets; top-k predictions."""

    def __init__(self, num_classes: int, in_channels: int, loss: dict | None = None, init_std: float = 0.01):
        super().__init__()
        if num_classes <= 0:
            raise ValueError(f'num_classes must be positive, got {num_classes}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.init_std = init_std
        self.loss_module = MODELS.build(loss if loss is not None else dict(type='CrossEntropyLoss'))

    def pre_logits(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x = feats[-1]
        if x.dim() != 2:
            raise ValueError(
                f'{type(self).__name__} expects (B, D) features, got {tuple(x.shape)}; use a pooled out_type'
            )
        return x

    def loss(self, feats: tuple[torch.Tensor, ...], targets: torch.Tensor) -> dict:
        """Args: targets (B,) class indices or (B, K) soft targets (Mixup/CutMix). Returns: dict(loss=...)."""
        return dict(loss=self.loss_module(self(feats), targets))


@MODELS.register_module()
class LinearClsHead(_ClsHead):
    """One Linear layer ``fc``: (B, D) -> (B, K). Init trunc-normal(``init_std``), zero bias."""

    def __init__(self, num_classes: int, in_channels: int, loss: dict | None = None, init_std: float = 0.01):
        super().__init__(num_classes, in_channels, loss, init_std)
        self.fc = nn.Linear(in_channels, num_classes)

    def init_weights(self) -> None:
        nn.init.trunc_normal_(self.fc.weight, std=self.init_std)
        nn.init.zeros_(self.fc.bias)

    def forward(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.fc(self.pre_logits(feats))


@MODELS.register_module()
class VisionTransformerClsHead(_ClsHead):
    """mmpretrain's ViT head without the optional hidden layer: ``layers.head`` Linear, (B, D) -> (B, K)."""

    def __init__(self, num_classes: int, in_channels: int, loss: dict | None = None, init_std: float = 0.01):
        super().__init__(num_classes, in_channels, loss, init_std)
        self.layers = nn.Sequential()
        self.layers.add_module('head', nn.Linear(in_channels, num_classes))

    def init_weights(self) -> None:
        nn.init.trunc_normal_(self.layers.head.weight, std=self.init_std)
        nn.init.zeros_(self.layers.head.bias)

    def forward(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.layers.head(self.pre_logits(feats))
