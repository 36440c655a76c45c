"""LARS (You et al. 2017) as used for MAE linear probing (the MoCo v3 / official MAE formulation)."""

import torch
from torch.optim import Optimizer

from mimlab.registry import OPTIMIZERS


@OPTIMIZERS.register_module()
class LARS(Optimizer):
    """SGD with momentum and a layer-wise trust ratio.

    For a parameter ``p`` with gradient ``g`` and ``p.ndim > 1``::

        d = g + weight_decay * p
        q = eta * ||p|| / ||d||   (1 when either norm is 0)
        mu = momentum * mu + q * d
        p -= lr * mu

    1-D parameters (biases, norm weights) get neither weight decay nor the trust ratio: ``d = g``. The ratio is
    computed on the device with ``torch.where``, so a step makes no host synchronisation (mmpretrain's LARS calls
    ``.item()`` twice per parameter).

    Args:
        params: Parameters or param groups.
        lr: Learning rate.
        weight_decay: L2 coefficient added to the gradient (0 for MAE's linear probe).
        momentum: Momentum factor.
        eta: Trust coefficient.
    """

    def __init__(self, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9, eta: float = 0.001):
        if lr < 0:
            raise ValueError(f'invalid learning rate {lr}')
        if weight_decay < 0 or momentum < 0 or eta < 0:
            raise ValueError('weight_decay, momentum and eta must be non-negative')
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group['params']:
                if p.grad is None:
                    continue
                d = p.grad
                if p.ndim > 1:
                    d = d.add(p, alpha=group['weight_decay'])
                    p_norm, d_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(d)
                    one = torch.ones_like(p_norm)
                    q = torch.where(p_norm > 0, torch.where(d_norm > 0, group['eta'] * p_norm / d_norm, one), one)
                    d = d.mul(q)
                state = self.state[p]
                if 'mu' not in state:
                    state['mu'] = torch.zeros_like(p)
                mu = state['mu']
                mu.mul_(group['momentum']).add_(d)
                p.add_(mu, alpha=-group['lr'])
        return loss
