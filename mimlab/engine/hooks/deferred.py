"""Reading training scalars from the device once per logging interval instead of once per iteration.

mmengine's ``RuntimeInfoHook`` calls ``.item()`` on every loss after every iteration, and mmengine's
``OptimWrapper`` reads the clipped gradient norm with ``float()``: each read waits for the device to finish the step,
so the host cannot queue the next iteration's work (data copy, kernel launches) while the current one runs. Keeping
the values on the device and reading them in one go right before the ``LoggerHook`` needs them gives the logs the
same numbers (every iteration's value lands in the message hub, in order) without a sync per step.
"""

import torch
from mmengine.hooks import LoggerHook

__all__ = ['logging_interval', 'log_due', 'read_scalars']


def logging_interval(runner) -> int:
    """The train logging interval of the runner's ``LoggerHook`` (1, i.e. every iteration, when it has none)."""
    for hook in runner.hooks:
        if isinstance(hook, LoggerHook):
            return max(int(hook.interval), 1)
    return 1


def log_due(runner, batch_idx: int, interval: int) -> bool:
    """Whether the ``LoggerHook`` logs after this training iteration, or the epoch or the training ends here."""
    if (batch_idx + 1) % interval == 0 or runner.iter + 1 >= runner.max_iters:
        return True
    loader = runner.train_dataloader
    try:
        return batch_idx + 1 == len(loader)
    except TypeError:  # an iterable without a length
        return False


def read_scalars(tensors: list[torch.Tensor]) -> list[float]:
    """The values of one-element tensors, in order, with one host read per device."""
    values: list[float | None] = [None] * len(tensors)
    by_device: dict[torch.device, list[int]] = {}
    for i, t in enumerate(tensors):
        by_device.setdefault(t.device, []).append(i)
    for idx in by_device.values():
        read = torch.stack([tensors[i].detach().reshape(()).float() for i in idx]).tolist()  # the one sync
        for i, v in zip(idx, read, strict=True):
            values[i] = v
    return values
