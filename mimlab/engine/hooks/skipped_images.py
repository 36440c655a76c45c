"""Log how many unreadable images ``skip_bad_images`` has replaced (``train/skipped_images`` in the scalars)."""

from mmengine.hooks import Hook

from mimlab.registry import HOOKS

__all__ = ['SkippedImagesHook']


def _skipped(dataloader) -> int | None:
    dataset = getattr(dataloader, 'dataset', None)
    while dataset is not None and not hasattr(dataset, 'num_skipped_images'):
        dataset = getattr(dataset, 'dataset', None)  # through mmengine's dataset wrappers
    return None if dataset is None else dataset.num_skipped_images


@HOOKS.register_module()
class SkippedImagesHook(Hook):
    """Put the training dataset's count of skipped images into the message hub every iteration (a shared-memory
    read, no device sync), so the logger prints it; warn at the end of an epoch in which images were skipped."""

    priority = 'BELOW_NORMAL'

    def __init__(self):
        self._at_epoch_start = 0

    def before_train_epoch(self, runner) -> None:
        self._at_epoch_start = _skipped(runner.train_dataloader) or 0

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        count = _skipped(runner.train_dataloader)
        if count is not None:
            runner.message_hub.update_scalar('train/skipped_images', count)

    def after_train_epoch(self, runner) -> None:
        # the loop counts the epoch as done only after these hooks: runner.epoch is still 0 in the first one
        count = _skipped(runner.train_dataloader)
        if count:
            runner.logger.warning(
                f'epoch {runner.epoch + 1}: {count - self._at_epoch_start} unreadable images skipped in this epoch, '
                f'{count} in this run (skip_bad_images=True; list them with tools/misc/verify_dataset.py)'
            )
