"""Hooks that break training on purpose, for the fault-tolerance tests (imported by configs via custom_imports)."""

import os
import signal

from mmengine.hooks import Hook

from mimlab.registry import HOOKS


@HOOKS.register_module()
class KillAtIterHook(Hook):
    """SIGKILL this process just before iteration ``iteration`` (1-based) runs: no clean-up, no final save."""

    def __init__(self, iteration: int):
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class PoisonWeightsAtIterHook(Hook):
    """Fill every parameter (this rank's shards, when sharded) with NaN just before iteration ``iteration`` runs."""

    def __init__(self, iteration: int):
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.iteration:
            import torch

            with torch.no_grad():
                for param in runner.model.parameters():
                    param.fill_(float('nan'))
