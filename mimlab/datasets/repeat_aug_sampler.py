"""Repeated augmentation (Hoffer et al. 2020; DeiT's ``RASampler``) that resumes mid-epoch exactly.

Every image of the shuffled order is repeated ``num_repeats`` times in a row and the list is dealt round-robin to the
ranks, so the copies of an image land on consecutive ranks (on different ranks when ``world_size >= num_repeats``)
and get different augmentations. An epoch keeps the length of a plain epoch: each rank takes the first
``len(dataset) // selected_round * selected_round / world_size`` indices of its share, i.e. about
``len(dataset) / num_repeats`` distinct images per epoch, each seen ``num_repeats`` times. These are the semantics of
timm's ``RepeatAugSampler`` (which the RSB A2 recipe and openmixup's copy of DeiT's sampler use), and the indices
are timm's: this class runs timm's ``__iter__``, with the permutation seeded by ``seed + epoch`` (timm and openmixup
seed it by ``epoch`` alone, i.e. ``seed=0`` here) so that the config's seed changes the order.

It has :class:`~mimlab.datasets.ExactResumeSampler`'s interface: ``set_epoch`` (called by mmengine's
``DistSamplerSeedHook``), :meth:`skip`, with which :class:`~mimlab.engine.loops.ExactResumeEpochBasedTrainLoop`
continues an epoch after the batches it had trained, without decoding them, and per-sample seeding
(``seed_samples``, :class:`~mimlab.datasets.samplers.SampleKey`): a sample's transforms draw from
``(seed, epoch * num_repeats + copy, index)``, where ``copy`` (0 to ``num_repeats - 1``) is its place among the
image's copies, so the copies get different augmentations, and the same ones after a resume and with any number
of workers.
"""

from collections.abc import Iterator

from mmengine.dist import get_dist_info, sync_random_seed
from timm.data.distributed_sampler import RepeatAugSampler as _TimmRepeatAugSampler

from mimlab.registry import DATA_SAMPLERS

from .samplers import SampleKey, SeededFetch

__all__ = ['RepeatAugSampler']


@DATA_SAMPLERS.register_module()
class RepeatAugSampler(_TimmRepeatAugSampler):
    """timm's ``RepeatAugSampler`` (same arguments and indices) with a seed and :meth:`skip`.

    Args:
        dataset: The dataset (only its length is used).
        shuffle: Shuffle every epoch (``seed + epoch``).
        num_repeats: Copies of each image per epoch (3 in DeiT and RSB A2).
        selected_round: Round the per-epoch sample count down to a multiple of this before dividing it over the
            ranks (DeiT's 256; 0: ``ceil(len(dataset) / world_size)`` per rank).
        selected_ratio: Divide the count by this instead of the world size (0: the world size).
        seed: Base of the shuffle's seed; None draws one, the same on every rank (as mmengine's samplers).
        round_up: Accepted for mmengine's sampler arguments; the share is always padded by wrapping around.
        num_replicas: World size (None: the process group's, 1 without one).
        rank: This process's rank (None: the process group's, 0 without one).
        seed_samples: Yield :class:`~mimlab.datasets.samplers.SampleKey` indices (module docstring); False: plain
            indices, transforms draw from each worker's own stream.
    """

    def __init__(
        self,
        dataset,
        shuffle: bool = True,
        num_repeats: int = 3,
        selected_round: int = 256,
        selected_ratio: float = 0,
        seed: int | None = None,
        round_up: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed_samples: bool = True,
    ) -> None:
        dist_rank, world_size = get_dist_info()
        super().__init__(
            dataset,
            num_replicas=world_size if num_replicas is None else num_replicas,
            rank=dist_rank if rank is None else rank,
            shuffle=shuffle,
            num_repeats=num_repeats,
            selected_round=selected_round,
            selected_ratio=selected_ratio,
        )
        self.seed = sync_random_seed() if seed is None else int(seed)
        self._skip = 0
        self.seed_samples = seed_samples
        if seed_samples:
            if float(num_repeats) != int(num_repeats):
                raise ValueError(f'seed_samples needs a whole num_repeats, got {num_repeats}')
            if not isinstance(getattr(dataset, '__getitems__', None), SeededFetch):
                dataset.__getitems__ = SeededFetch(dataset)

    def skip(self, num_samples: int) -> None:
        """Leave out the first ``num_samples`` indices of this rank in the next ``iter()`` only.

        Args:
            num_samples: Samples already consumed by this rank in the current epoch (batches done x batch size).
        """
        if not 0 <= num_samples <= len(self):
            raise ValueError(f'cannot skip {num_samples} samples of an epoch of {len(self)} on this rank')
        self._skip = num_samples

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        self.epoch = self.seed + epoch  # timm seeds its generator with self.epoch
        try:
            indices = list(super().__iter__())
        finally:
            self.epoch = epoch
        skip, self._skip = self._skip, 0
        if not self.seed_samples:
            return iter(indices[skip:])
        # this rank's positions in the repeated list [a, a, a, b, b, b, ...] (timm's padding wraps around): the
        # position within an image's run of copies tells the copies apart
        n, repeats = len(self.dataset) * int(self.num_repeats), int(self.num_repeats)
        positions = range(self.rank, self.total_size, self.num_replicas)[: self.num_selected_samples]
        seed, epoch = self.seed, self.epoch
        return iter([SampleKey(i, seed, epoch * repeats + p % n % repeats) for i, p in zip(indices, positions)][skip:])
