"""Weight EMA with openmixup's linear warm-up of the decay, on top of mmengine's ``ExponentialMovingAverage``.

mmengine's ``EMAHook`` keeps the average, validates (and tests) with the averaged weights swapped in, and saves them
as the checkpoint's ``state_dict`` (the live weights go to ``ema_state_dict`` and come back on ``--resume``), so a
fine-tuned checkpoint loads as the model with its EMA weights. Recipes name this class as the hook's ``ema_type``::

    custom_hooks = [dict(type='EMAHook', ema_type='WarmupExponentialMovingAverage', momentum=1e-4,
                         warmup_iters=20 * 626, warmup_ratio=0.9)]

Conventions: mmengine's ``momentum`` is the weight of the *new* value, ``ema = (1 - momentum) * ema + momentum * w``;
openmixup's ``EMAHook(momentum=0.9999)`` is the decay ``d = 1 - momentum`` of the same update. openmixup warms the
decay up linearly over ``warmup_iters`` updates from ``warmup_ratio * d``: at update ``t``,
``d_t = (1 - max(1 - t / warmup_iters, 0) * (1 - warmup_ratio)) * d``. mmengine's first update copies the weights
(``t = 0``; openmixup starts from the weights before the first step instead, whose share of the average after ``t``
updates is below ``prod(d_i)``). ``t`` is the averaged model's ``steps`` buffer, saved with it, so a resumed run
continues the warm-up where it stopped. The decay is computed on the device: no host synchronisation per step.
"""

import torch
from mmengine.model import ExponentialMovingAverage
from torch import nn

from mimlab.registry import MODELS

__all__ = ['WarmupExponentialMovingAverage']


@MODELS.register_module()
class WarmupExponentialMovingAverage(ExponentialMovingAverage):
    """mmengine's ``ExponentialMovingAverage`` whose decay ``1 - momentum`` warms up linearly (openmixup's EMAHook).

    Args:
        model: The model to average.
        momentum: Weight of the new weights once warmed up (mmengine's convention: 1e-4 = openmixup's 0.9999).
        interval: Average every ``interval`` updates (mmengine's).
        device: Where the averaged copy lives (mmengine's).
        update_buffers: Average the buffers too (False: copy them, as openmixup's parameter-only EMA).
        warmup_iters: Updates over which the decay rises from ``warmup_ratio * (1 - momentum)`` to ``1 - momentum``;
            0 disables the warm-up (then this is mmengine's class).
        warmup_ratio: The decay's starting fraction, in (0, 1].
    """

    def __init__(
        self,
        model: nn.Module,
        momentum: float = 0.0002,
        interval: int = 1,
        device: torch.device | None = None,
        update_buffers: bool = False,
        warmup_iters: int = 0,
        warmup_ratio: float = 0.9,
    ) -> None:
        super().__init__(model, momentum, interval, device, update_buffers)
        if warmup_iters < 0:
            raise ValueError(f'warmup_iters must be >= 0, got {warmup_iters}')
        if not 0 < warmup_ratio <= 1:
            raise ValueError(f'warmup_ratio must be in (0, 1], got {warmup_ratio}')
        self.warmup_iters = int(warmup_iters)
        self.warmup_ratio = float(warmup_ratio)

    def decay(self, steps: torch.Tensor) -> torch.Tensor:
        """The decay ``d_t`` at update ``steps`` (a 0-d tensor), as a 0-d float64 tensor on its device."""
        decay = 1.0 - self.momentum
        if self.warmup_iters == 0:
            return torch.full((), decay, dtype=torch.float64, device=steps.device)
        k = (1.0 - steps.double() / self.warmup_iters).clamp(min=0.0) * (1.0 - self.warmup_ratio)
        return (1.0 - k) * decay

    def avg_func(self, averaged_param: torch.Tensor, source_param: torch.Tensor, steps: torch.Tensor) -> None:
        weight = (1.0 - self.decay(steps)).to(averaged_param.dtype)  # the new weights' share
        averaged_param.lerp_(source_param, weight)
