"""Activation checkpointing of one module, without touching its forward: torch's composable ``checkpoint``.

The module keeps its class, its forward and its parameter names; forward hooks make it keep only its inputs for the
backward pass and run again there, with the RNG state of the first run (dropout and stochastic depth redraw the same
numbers). The backbones' ``with_cp=True`` and :func:`mimlab.engine.parallel.apply_activation_checkpointing` (which
finds the blocks of any model by class name, for DDP and FSDP2 runs) both use this one function.
"""

from torch import nn
from torch.distributed._composable import checkpoint as _composable_checkpoint

__all__ = ['checkpoint_module', 'is_checkpointed']


def is_checkpointed(module: nn.Module) -> bool:
    """Whether :func:`checkpoint_module` has been applied to ``module``."""
    return getattr(module, '_mimlab_checkpointed', False)


def checkpoint_module(module: nn.Module) -> nn.Module:
    """Recompute ``module`` in the backward pass (once: a second call is a no-op); returns ``module``."""
    if not is_checkpointed(module):
        _composable_checkpoint(module)
        module._mimlab_checkpointed = True
    return module
