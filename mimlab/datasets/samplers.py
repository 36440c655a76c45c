"""mmengine's ``DefaultSampler`` that can start an epoch part-way, and whose samples' augmentations depend only on
``(seed, epoch, index)``, so a resumed job sees exactly the batches of the uninterrupted one.

mmengine's ``EpochBasedTrainLoop`` restarts the epoch of an iteration checkpoint from its first batch after a resume:
the batches before the checkpoint are trained twice, the run is longer than ``max_epochs`` and the schedules are
shifted. mimlab's :class:`~mimlab.engine.loops.ExactResumeEpochBasedTrainLoop` asks this sampler to drop the samples
the epoch had already used; the permutation itself (``seed + epoch``) is unchanged, so the remaining batches are
exactly those of the uninterrupted run, and no image is decoded to skip them.

**Per-sample seeding.** Random transforms draw from the global generators of the process that runs them (Python's
``random``, numpy's, torch's). In DataLoader workers those are seeded once, when the worker starts, so a sample's
crop depends on how many samples that worker processed before: a resumed job (new workers, which may also get other
batches than before) draws different crops, and so does the same job with another ``num_workers``. Saving and
restoring the workers' generators instead would not fix it: workers run ahead of the training step (prefetching) and
a resumed job's batch ``k`` may go to another worker. So each index this sampler yields is a :class:`SampleKey`,
an ``int`` that also carries the sampler's seed and epoch (it reaches the worker with the index, also with
persistent workers, whose dataset copy never sees the sampler's later ``set_epoch``), and the dataset's pipeline
runs for each sample with Python's, numpy's and torch's CPU generators seeded from ``(seed, epoch, index)``
(:func:`mimlab.utils.rng.seed_sample`). Masks drawn in the pipeline (SimMIM, A2MIM), crops and flips are then the
same whatever the number of workers (0, 1, 2, ...), whether they persist, and wherever a job was resumed. Without
workers the pipeline runs in the main process, whose generators (masks drawn on the device, drop path, mixup) are
restored around it, so they go on as if no pipeline had run. The seed is the sampler's (``randomness.seed``, or one
seed shared by all ranks with ``diff_rank_seed=True``): ranks see different indices, hence different draws.

The seeding is installed as the dataset's ``__getitems__`` (the batched fetch that torch's DataLoader calls when a
dataset has one), which fetches each sample with ``dataset[int(index)]``: any map-style dataset gets it, and the
dataset itself only ever sees plain ints.

mimlab's configs name it (``sampler=dict(type='ExactResumeSampler', shuffle=True)``). With mmengine's
``DefaultSampler`` (``type='DefaultSampler'``) the loop still resumes mid-epoch in the same order, but by loading and
discarding the used batches, and augmentations made in workers are not reproduced after a resume.
"""

import itertools
from collections.abc import Iterator

from mmengine.dataset import DefaultSampler as _MMEngineDefaultSampler
from torch.utils.data import get_worker_info

from mimlab.registry import DATA_SAMPLERS
from mimlab.utils.rng import cpu_rng_isolated, seed_sample

__all__ = ['ExactResumeSampler', 'SampleKey']


class SampleKey(int):
    """A dataset index (an ``int``: arithmetic on it gives plain ints) with the ``seed`` and ``epoch`` its sample's
    random transforms are drawn from."""

    def __new__(cls, index: int, seed: int, epoch: int):
        key = super().__new__(cls, index)
        key.seed, key.epoch = seed, epoch
        return key

    def __reduce__(self):  # through the workers' index queue
        return SampleKey, (int(self), self.seed, self.epoch)


class SeededFetch:
    """A dataset's ``__getitems__``: fetch ``dataset[int(k)]`` for each index ``k``, a :class:`SampleKey`'s with the
    CPU generators seeded from its ``(seed, epoch, index)``; in the main process (``num_workers=0``) the generators are
    restored afterwards."""

    def __init__(self, dataset):
        self.dataset = dataset

    def _fetch(self, indices: list) -> list:
        out = []
        for idx in indices:
            if isinstance(idx, SampleKey):
                seed_sample(idx.seed, idx.epoch, int(idx))
            out.append(self.dataset[int(idx)])
        return out

    def __call__(self, indices: list) -> list:
        if get_worker_info() is not None:
            return self._fetch(indices)  # a worker's generators serve only its pipeline
        with cpu_rng_isolated():
            return self._fetch(indices)


@DATA_SAMPLERS.register_module()
class ExactResumeSampler(_MMEngineDefaultSampler):
    """mmengine's ``DefaultSampler`` (same arguments, same order) plus :meth:`skip` and per-sample seeding.

    Args:
        *args: mmengine's ``DefaultSampler`` arguments (``dataset``, ``shuffle``, ``seed``, ``round_up``).
        seed_samples: Yield :class:`SampleKey` indices and seed each sample's transforms from ``(seed, epoch,
            index)`` (module docstring). False: plain indices; transforms draw from each worker's own stream, as in
            mmengine.
        **kwargs: As ``*args``.
    """

    _skip = 0

    def __init__(self, *args, seed_samples: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed_samples = seed_samples
        if seed_samples and not isinstance(getattr(self.dataset, '__getitems__', None), SeededFetch):
            self.dataset.__getitems__ = SeededFetch(self.dataset)

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
        if not self.seed_samples:
            return iter(indices[skip:])
        seed, epoch = self.seed, self.epoch  # read now, not when the keys are drawn
        return (SampleKey(i, seed, epoch) for i in itertools.islice(indices, skip, None))  # one key at a time
