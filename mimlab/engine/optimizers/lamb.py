"""LAMB (You et al. 2019, "Large Batch Optimization for Deep Learning") for the ResNet Strikes Back recipes.

mimlab registers timm's ``timm.optim.Lamb`` as it is (``optimizer=dict(type='Lamb', ...)``): openmixup's ``LAMB``,
which A2MIM's RSB A2/A3 fine-tuning recipes name, is a copy of an earlier version of the same class (NVIDIA's
FusedLAMB semantics, same defaults: ``eps=1e-6``, ``max_grad_norm=1.0``, bias correction, grad averaging). Per step:

- all gradients are divided by ``max(||g||_global / max_grad_norm, 1)`` (a global-norm clip built into the optimizer);
- ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``, ``u = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``;
- in a group with weight decay: ``u += wd * p`` and the trust ratio ``||p|| / ||u||`` (1 when either norm is 0)
  scales the step; groups without weight decay (norms, biases) take the plain Adam step;
- ``p -= lr * ratio * u``.

``tests/test_finetune_components.py`` checks timm's update against this restatement.
"""

from timm.optim import Lamb

from mimlab.registry import OPTIMIZERS

OPTIMIZERS.register_module(module=Lamb)

__all__ = ['Lamb']
