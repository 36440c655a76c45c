"""Train loops that resume where the interrupted run was, batch for batch and random draw for random draw.

mimlab's configs name them (``train_cfg=dict(type='ExactResumeEpochBasedTrainLoop', ...)``); they take the arguments
of mmengine's ``EpochBasedTrainLoop`` / ``IterBasedTrainLoop`` (which ``type='EpochBasedTrainLoop'`` still builds) and
add:

- **Mid-epoch resume** (``ExactResumeEpochBasedTrainLoop``): mmengine restarts the epoch of an iteration checkpoint
  from its first batch, so a job killed at iteration 9 of a 16-iteration epoch trains 9 batches twice and ends 9
  iterations late. Here the epoch continues with the batch after the checkpoint: the sampler drops the samples
  already used (:meth:`mimlab.datasets.ExactResumeSampler.skip`, no image decoded), or, for other samplers (mmengine's
  ``DefaultSampler``), the used batches are drawn and discarded.
- **RNG continuity** (both loops): the RNG states saved by :class:`~mimlab.engine.hooks.TrainStateHook` are
  restored where the interrupted run saved them, after the skip of the trained batches. Masks drawn on the device,
  drop paths and mixup then repeat.
- **A data iterator that draws nothing from the main process's generators.** torch's DataLoader draws the base seed
  of its workers from its ``generator`` each time a data iterator is created, from the global torch generator when
  it has none. With persistent workers an uninterrupted run creates one iterator for the whole run, a resumed run
  one more, so the resumed run's masks would be one draw off. The loops give the train loader a generator of its
  own, seeded from the run's seed (the worker base seeds it draws only reach mmengine's ``worker_init_fn``, which
  re-seeds the workers anyway, and :class:`~mimlab.datasets.ExactResumeSampler`'s per-sample seeding makes the
  augmentations independent of the workers' streams).
"""

import torch
from mmengine.runner import EpochBasedTrainLoop as _MMEngineEpochLoop
from mmengine.runner import IterBasedTrainLoop as _MMEngineIterLoop
from torch.utils.data import DataLoader

from mimlab.engine.hooks.train_state import TrainStateHook
from mimlab.registry import LOOPS
from mimlab.utils.rng import set_rng_state

__all__ = ['ExactResumeEpochBasedTrainLoop', 'ExactResumeIterBasedTrainLoop']


def _state_hook(runner) -> TrainStateHook:
    """The runner's :class:`TrainStateHook`, registered now if the config did not list one."""
    for hook in runner.hooks:
        if isinstance(hook, TrainStateHook):
            return hook
    hook = TrainStateHook()
    runner.register_hook(hook)
    return hook


def _own_generator(loop) -> None:
    """Give the loop's DataLoader a generator of its own (module docstring), unless the config gave it one."""
    if isinstance(loop.dataloader, DataLoader) and loop.dataloader.generator is None:
        seed = loop.runner.seed if loop.runner.seed is not None else 0
        loop.dataloader.generator = torch.Generator().manual_seed(seed)


def _restore_rng(loop) -> None:
    """Restore the RNG states of the checkpoint this run resumed from (nothing for a new run or a ``load_from``)."""
    state = loop._state_hook.pop_rng_state(loop.runner) if loop._iter > 0 else None
    loop._state_hook.rng_states = None
    if state is not None:
        set_rng_state(state)
        loop.runner.logger.info(f'restored the RNG states saved at iteration {loop._iter}')


@LOOPS.register_module()
class ExactResumeEpochBasedTrainLoop(_MMEngineEpochLoop):
    """mmengine's ``EpochBasedTrainLoop`` (same arguments) that continues a mid-epoch checkpoint's epoch."""

    def __init__(self, runner, *args, **kwargs):
        super().__init__(runner, *args, **kwargs)
        self._state_hook = _state_hook(runner)
        _own_generator(self)

    def run_epoch(self) -> None:
        done = self._iter - self._epoch * len(self.dataloader)  # batches of this epoch trained before a resume
        if done == len(self.dataloader):
            # resumed from the checkpoint of the epoch's last iteration, written before the epoch was closed
            _restore_rng(self)
            self.runner.call_hook('after_train_epoch')
            self._epoch += 1
            return
        if not 0 <= done < len(self.dataloader):
            self.runner.logger.warning(
                f'iteration {self._iter} is not in epoch {self._epoch + 1} of {len(self.dataloader)} iterations '
                '(did the batch size or the dataset change?): the epoch starts from its first batch'
            )
            done = 0
        self.runner.call_hook('before_train_epoch')  # sets the sampler's epoch, hence its permutation
        self.runner.model.train()
        sampler = self.dataloader.sampler
        if not hasattr(sampler, 'skip'):  # a streamed (iterable) dataset has no sampler: it skips by itself
            sampler = getattr(self.dataloader, 'dataset', sampler)
        batch_size = self.dataloader.batch_size
        by_sampler = done > 0 and hasattr(sampler, 'skip') and batch_size is not None
        if by_sampler:
            sampler.skip(done * batch_size)
        batches = iter(self.dataloader)  # draws nothing from the global generators (_own_generator)
        if done > 0:
            how = 'sampler skip' if by_sampler else 'drawing and discarding batches'
            self.runner.logger.info(f'resuming epoch {self._epoch + 1} at batch {done + 1} ({how})')
            if not by_sampler:
                for _ in range(done):  # without workers their transforms run here, and may draw from our RNGs
                    next(batches)
        _restore_rng(self)
        for idx, data_batch in enumerate(batches, start=done):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


class _RestoreRngBeforeNext:
    """Iterator wrapper: restores the saved RNG states just before batch ``loop.iter + 1`` is drawn."""

    def __init__(self, iterator, loop):
        self.iterator, self.loop, self.drawn, self.restored = iterator, loop, 0, False

    def __iter__(self):
        return self

    def __next__(self):
        if not self.restored and self.drawn == self.loop._iter:  # mmengine's skip of the trained batches is over
            _restore_rng(self.loop)
            self.restored = True
        self.drawn += 1
        return next(self.iterator)


@LOOPS.register_module()
class ExactResumeIterBasedTrainLoop(_MMEngineIterLoop):
    """mmengine's ``IterBasedTrainLoop`` (same arguments); after a resume the RNG states continue as saved.

    mmengine skips the trained batches by drawing them from the data iterator (so their order after a resume is the
    uninterrupted order); that skip consumes random draws itself, so the states are restored after it, just before
    the first new batch is drawn.
    """

    def __init__(self, runner, *args, **kwargs):
        super().__init__(runner, *args, **kwargs)
        self._state_hook = _state_hook(runner)
        # mmengine created the first data iterator above, the same way in a new and a resumed run; later ones (one
        # per pass over the data without persistent workers) draw from the loader's own generator
        _own_generator(self)
        self.dataloader_iterator = _RestoreRngBeforeNext(self.dataloader_iterator, self)
