"""mmengine's ``DefaultSampler`` that can start an epoch part-way, so a job resumed mid-epoch sees the uninterrupted
order.

mmengine's ``EpochBasedTrainLoop`` restarts the epoch from its first batch after a resume from an iteration
checkpoint: the batches before the checkpoint are trained twice, the run is longer than ``max_epochs`` and the
schedules are shifted. mimlab's :class:`~mimlab.engine.loops.ExactResumeEpochBasedTrainLoop` asks this sampler to
drop the samples the epoch had already used; the permutation itself (``seed + epoch``) is unchanged, so the remaining
batches are exactly those of the uninterrupted run, and no image is decoded to skip them.

mimlab's configs name it (``sampler=dict(type='ExactResumeSampler', shuffle=True)``). With mmengine's
``DefaultSampler`` (``type='DefaultSampler'``) the loop still resumes mid-epoch exactly, but by loading and discarding
the used batches.
"""

from collections.abc import Iterator

from mmengine.dataset import DefaultSampler as _MMEngineDefaultSampler

from mimlab.registry import DATA_SAMPLERS

__all__ = ['ExactResumeSampler']


@DATA_SAMPLERS.register_module()
class ExactResumeSampler(_MMEngineDefaultSampler):
    """mmengine's ``DefaultSampler`` (same arguments, same order) plus :meth:`skip`."""

    _skip = 0

    def skip(self, num_samples: int) -> None:
        """Leave out the first ``num_samples`` indices of this rank in the next ``iter()`` only.

        Args:
            num_samples: Samples already consumed by this rank in the current epoch (batches done x batch size).
        """
        if not 0 <= num_samples <= self.num_samples:
            raise ValueError(f'cannot skip {num_samples} samples of an epoch of {self.num_samples} on this rank')
        self._skip = num_samples

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip, self._skip = self._skip, 0
        return iter(indices[skip:])
