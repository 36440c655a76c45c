"""mmengine's ``RuntimeInfoHook`` without its per-iteration host sync (see :mod:`mimlab.engine.hooks.deferred`).

mimlab's configs name it (``default_hooks.runtime_info=dict(type='DeferredRuntimeInfoHook')``); a config that says
``type='RuntimeInfoHook'`` gets mmengine's, which gives the same logs with one host sync per loss and iteration.
"""

import torch
from mmengine.hooks import RuntimeInfoHook as _MMEngineRuntimeInfoHook
from mmengine.utils import apply_to

from mimlab.registry import HOOKS

from .deferred import log_due, logging_interval, read_scalars


@HOOKS.register_module()
class DeferredRuntimeInfoHook(_MMEngineRuntimeInfoHook):
    """mmengine's ``RuntimeInfoHook`` (same arguments), except that tensor outputs of ``train_step`` (the losses)
    stay on the device until the ``LoggerHook`` logs, the epoch ends, a checkpoint is written or training ends; then
    all of them are read at once and pushed into the message hub in iteration order, so windowed and global means are
    what mmengine's hook gives."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending: list[tuple[str, torch.Tensor]] = []
        self._interval = 1

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._pending = []
        self._interval = logging_interval(runner)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if outputs is not None:
            for key, value in outputs.items():
                if isinstance(value, torch.Tensor) and value.numel() == 1:
                    self._pending.append((f'train/{key}', value.detach()))
                else:
                    runner.message_hub.update_scalar(f'train/{key}', value)
        if log_due(runner, batch_idx, self._interval):
            self.flush(runner)

    def flush(self, runner) -> bool:
        """Push the pending values into the message hub; whether there were any."""
        if not self._pending:
            return False
        keys = [k for k, _ in self._pending]
        values = read_scalars([t for _, t in self._pending])
        self._pending = []
        for key, value in zip(keys, values, strict=True):
            runner.message_hub.update_scalar(key, value)
        return True

    def after_train_epoch(self, runner) -> None:
        self.flush(runner)

    def after_train(self, runner) -> None:
        self.flush(runner)
        super().after_train(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.flush(runner) and 'message_hub' in checkpoint:  # the hub was copied before the flush
            checkpoint['message_hub'] = apply_to(
                runner.message_hub.state_dict(), lambda x: hasattr(x, 'cpu'), lambda x: x.cpu()
            )
