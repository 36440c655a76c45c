"""Drive a streamed training dataset (WebDataset shards, Hugging Face streaming) from the train loop.

An ``IterableDataset`` has no sampler for mmengine's ``DistSamplerSeedHook`` to reach, so this hook tells the
dataset the epoch and the loader's batch size before each epoch, and keeps the dataset's order-deciding state
(:meth:`~mimlab.datasets.StreamedDataset.state_dict`) in the checkpoint as ``stream_state``. The resume position
itself needs no extra field: mimlab's :class:`~mimlab.engine.loops.ExactResumeEpochBasedTrainLoop` computes the
batches of the epoch already trained from the checkpoint's iteration and passes them to the dataset's
:meth:`~mimlab.datasets.StreamedDataset.skip`, as it does for :class:`~mimlab.datasets.ExactResumeSampler`.
On a resume the saved state is compared with the dataset's: a different seed, number of ranks, batch size or shard
set would make the remaining samples differ from the interrupted run's, and is reported.

:func:`~mimlab.engine.build_runner` registers this hook when the training dataset is a ``StreamedDataset``.
"""

from mmengine.hooks import Hook

from mimlab.registry import HOOKS

__all__ = ['StreamedDatasetHook', 'streamed_dataset']


def streamed_dataset(dataloader):
    """The ``StreamedDataset`` a dataloader reads (through mmengine's dataset wrappers), or None."""
    from mimlab.datasets.streaming import StreamedDataset

    dataset = getattr(dataloader, 'dataset', None)
    while dataset is not None and not isinstance(dataset, StreamedDataset):
        dataset = getattr(dataset, 'dataset', None)
    return dataset


@HOOKS.register_module()
class StreamedDatasetHook(Hook):
    """Set a streamed training dataset's epoch and batch size; save and check its order state in checkpoints."""

    priority = 'HIGH'  # before the other hooks' before_train_epoch, like mmengine's DistSamplerSeedHook

    def __init__(self):
        self._loaded = None
        self._workers_saved = None

    def before_train(self, runner) -> None:
        from mmengine.runner import IterBasedTrainLoop

        if isinstance(runner.train_loop, IterBasedTrainLoop) and streamed_dataset(runner.train_loop.dataloader):
            runner.logger.warning(
                'a streamed dataset under an iteration-based loop: mmengine restarts the data iterator without '
                "telling the dataset the next epoch, so every pass repeats the first epoch's order; use an "
                "epoch-based loop (train_cfg.type='ExactResumeEpochBasedTrainLoop')"
            )

    def before_train_epoch(self, runner) -> None:
        loader = runner.train_loop.dataloader
        dataset = streamed_dataset(loader)
        if dataset is None:
            return
        dataset.set_batch_size(loader.batch_size or 1)
        dataset.set_epoch(runner.epoch)
        if self._loaded is not None:
            saved, self._loaded = self._loaded, None
            problems = dataset.mismatches(saved)
            if self._workers_saved is not None and self._workers_saved != loader.num_workers:
                problems.append(f'num_workers: saved {self._workers_saved}, now {loader.num_workers}')
            if problems:
                runner.logger.warning(
                    'the streamed dataset differs from the checkpoint it resumes ('
                    + '; '.join(problems)
                    + '): the remaining samples of this epoch will not be those of the interrupted run'
                )

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        loader = runner.train_loop.dataloader if runner.train_loop is not None else None
        dataset = streamed_dataset(loader)
        if dataset is not None:
            checkpoint['stream_state'] = dict(dataset.state_dict(), num_workers=loader.num_workers)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('stream_state')
        if state is not None:
            state = dict(state)
            self._workers_saved = state.pop('num_workers', None)
            self._loaded = state
