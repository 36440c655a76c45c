"""Hooks that break training on purpose, for the fault-tolerance tests (imported by configs via custom_imports)."""

import os
import signal
import time

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

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
class SlowCheckpointWriteHook(Hook):
    """Make the write of the checkpoint of iteration ``iteration`` hang for ``seconds`` between writing its temporary
    file and renaming it (its ``fsync`` sleeps first), so a test can SIGKILL the job in the middle of the write."""

    def __init__(self, iteration: int, seconds: float = 60.0):
        self.iteration, self.seconds = iteration, seconds

    def before_save_checkpoint(self, runner, checkpoint):
        if checkpoint['meta'].get('iter') != self.iteration:
            return
        fsync = os.fsync

        def slow_fsync(fd):
            time.sleep(self.seconds)
            fsync(fd)

        os.fsync = slow_fsync  # atomic_write: write the temporary file, fsync, rename


@HOOKS.register_module()
class SaveFinalWeightsHook(Hook):
    """After training, every rank saves its own copy of the weights to ``work_dir/final_rank{rank}.pth``."""

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save(model.state_dict(), os.path.join(runner.work_dir, f'final_rank{get_rank()}.pth'))


@HOOKS.register_module()
class PoisonWeightsAtIterHook(Hook):
    """Fill every parameter (this rank's shards, when sharded) with NaN just before iteration ``iteration`` runs."""

    def __init__(self, iteration: int):
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.iteration:
            with torch.no_grad():
                for param in runner.model.parameters():
                    param.fill_(float('nan'))
