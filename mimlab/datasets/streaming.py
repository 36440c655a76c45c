"""Streamed datasets: samples read in order from shards, split across ranks and workers, resumable mid-epoch.

An ``IterableDataset`` does not go through a sampler, so this module decides itself which sample each
(rank, worker) reads and in which order, from a few integers that a checkpoint can hold:

1. **Flat positions.** The shards' samples, in a shard order drawn from ``(seed, pass)``, form one pass of ``N``
   positions; passes follow each other, so position ``q`` is sample ``q mod N`` of pass ``q // N``. Epoch ``e``
   covers the ``R * L`` positions from ``e * R * L`` on, ``L = E // R`` and ``E = samples_per_epoch`` (``N`` by
   default, so pass == epoch when ``R`` divides ``N``; otherwise the ``E mod R`` positions left roll over into the
   next epoch, none is dropped). Within a pass every sample is read exactly once.
2. **Ranks.** Rank ``r`` of ``R`` takes the contiguous range ``[r * L, (r + 1) * L)`` of its epoch.
3. **Workers.** The rank's ``ceil(L / B)`` batches of ``B`` (the loader's batch size, the last one shorter) are dealt
   to the ``W`` workers round robin, as torch's ``DataLoader`` collects them: batch ``k`` comes from *slot*
   ``k mod W``. Slot ``s`` reads a contiguous sub-range of the rank's range as long as its batches, so a worker opens
   only the shards of its own range (plus the start of a shard it shares with a neighbour, read and discarded).
4. **Shuffling.** The shard order of each pass is a permutation drawn from ``(seed, pass)``; each slot mixes its
   stream in a bounded buffer of ``shuffle_buffer`` samples drawn from ``(seed, epoch, rank, slot)``.
5. **Resume.** After ``k`` batches of an epoch, slot ``s`` has given its first ``m_s`` samples (its batches among the
   first ``k``). The buffer's output order is a function of positions alone, so a resumed iterator computes it on
   integers, starts reading at the earliest position it still has to give (typically within a few buffer lengths of
   the interruption point, not at the start of the slot), and gives worker ``w`` slot ``(w + k) mod W``, so the
   ``DataLoader``'s round robin, which starts at worker 0, continues with batch ``k``. The remaining batches are those
   of the uninterrupted run, as long as the seed, the number of ranks, workers and the batch size are the same.

The epoch, the number of samples to skip and the batch size live in a small shared-memory tensor, so the main
process updates them for persistent workers too (:meth:`set_epoch`, :meth:`skip`, :meth:`set_batch_size`;
``mimlab.engine.hooks.StreamedDatasetHook`` calls them from the training loop and saves :meth:`state_dict` with the
checkpoint).

Legend: ``N`` samples per pass, ``E`` samples per epoch, ``R`` ranks, ``L`` samples per rank and epoch, ``W`` workers,
``B`` batch size.
"""

import contextlib
import logging
import os.path as osp
from collections.abc import Iterator, Sequence
from functools import lru_cache

import cv2
import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.registry import DefaultScope

from mimlab.utils.rng import cpu_rng_isolated, seed_sample

__all__ = ['StreamedDataset', 'BadSample', 'rank_slot_ranges', 'prepare_encoded']

# Transforms that read ``img_bytes`` themselves (the fast path); any other pipeline gets ``img`` decoded here.
BYTE_READERS = ('LoadImageRandomResizedCrop', 'PackEncodedWithCrop')
# A leading loader of files is dropped: the dataset has already read (and decodes) the member.
FILE_LOADERS = ('LoadImageFromFile',)

_EPOCH, _SKIP, _BATCH = range(3)


class BadSample:
    """A sample that could not be read (a missing shard, or members lost to a truncated one), in its stream position.

    Args:
        where: The shard (and key) it should have come from.
        reason: What went wrong.
    """

    def __init__(self, where: str, reason: str):
        self.where, self.reason = where, reason


def _transform_name(t) -> str:
    return t.get('type', '') if isinstance(t, dict) else type(t).__name__


def prepare_encoded(data: bytes, where: str, reads_bytes: bool) -> dict:
    """Results for a pipeline from one encoded image.

    Args:
        data: The encoded image (JPEG, PNG, WebP, ...).
        where: Its name in error messages and ``img_path`` (shard and key, or dataset and row).
        reads_bytes: The pipeline's first transform reads ``img_bytes`` (the region-decoding fast path); else the
            image is decoded here with cv2 into ``img`` (H, W, 3) uint8 BGR, as ``LoadImageFromFile`` would.

    Returns:
        ``dict(img_path=where, img_bytes=data)`` or ``dict(img_path=where, img=..., img_shape=..., ori_shape=...)``.
    """
    results = dict(img_path=where)
    if reads_bytes:
        results['img_bytes'] = data
        return results
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f'cannot decode {where} ({len(data)} bytes)')
    results.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
    return results


def rank_slot_ranges(per_rank: int, batch_size: int, workers: int) -> list[tuple[int, int, int]]:
    """How a rank's samples of an epoch are dealt to its worker slots.

    Args:
        per_rank: Samples of the rank in the epoch (L).
        batch_size: B.
        workers: W (1 without workers).

    Returns:
        Per slot: (first position in the rank's range, number of samples, number of batches); slot ``s`` gives the
        batches ``k`` with ``k mod W == s``, and only the last batch of the epoch is shorter than B.
    """
    num_batches = -(-per_rank // batch_size)
    last = per_rank - (num_batches - 1) * batch_size if num_batches else 0
    out, start = [], 0
    for s in range(workers):
        ks = range(s, num_batches, workers)
        n = sum(last if k == num_batches - 1 else batch_size for k in ks)
        out.append((start, n, len(ks)))
        start += n
    return out


class StreamedDataset(torch.utils.data.IterableDataset):
    """Base of the shard-reading datasets: subclasses list the shards and read one.

    Subclasses implement :meth:`shard_sizes` (samples per shard, known before reading) and
    :meth:`read_shard` (the samples of one shard from a given index on, as ``(where, raw)`` pairs), and
    :meth:`to_results` (raw sample -> pipeline input).

    Args:
        samples_per_epoch: Samples of one epoch over all ranks (E); default: one pass (N).
        shuffle: Shuffle the shard order per pass and the samples in a buffer per epoch.
        shuffle_buffer: Samples in each worker's shuffle buffer (memory: this many encoded images per worker).
        seed: Seed of the shard order and the buffers.
        pipeline: Transforms applied to each sample. A first transform that reads encoded bytes
            (``LoadImageRandomResizedCrop``, ``PackEncodedWithCrop``) gets ``img_bytes``; otherwise the image is
            decoded here into ``img`` (cv2, BGR) and a leading ``LoadImageFromFile`` is dropped, so an ImageNet or
            built-in config changes only its ``dataset``.
        skip_bad_images: A sample that cannot be read or decoded (corrupt member, truncated or missing shard) is
            replaced by the next readable sample of the same worker, counted (:attr:`num_skipped_images`) and
            reported in a warning naming the shard and key; every worker still gives its share, so no rank waits.
            False (default): the error stops the run, naming the shard and key.
        metainfo: e.g. ``dict(classes=(...))``.
        test_mode: Accepted for config compatibility (a streamed set is read in order when ``shuffle=False``).
        seed_samples: Seed each sample's random transforms (crop, flip, masks drawn in the pipeline) from
            ``(seed, epoch, position)`` (:func:`mimlab.utils.rng.seed_sample`, as ``ExactResumeSampler`` does for
            map-style datasets), so they do not depend on the number of workers and repeat after a resume. False:
            they draw from each worker's own stream.
    """

    def __init__(
        self,
        samples_per_epoch: int | None = None,
        shuffle: bool = True,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        pipeline: Sequence = (),
        skip_bad_images: bool = False,
        metainfo: dict | None = None,
        test_mode: bool = False,
        seed_samples: bool = True,
    ):
        self.shuffle, self.shuffle_buffer, self.seed = bool(shuffle), int(shuffle_buffer), int(seed)
        self.seed_samples = bool(seed_samples)
        self.skip_bad_images, self.test_mode = skip_bad_images, test_mode
        self._metainfo = dict(metainfo or {})
        pipeline = list(pipeline)
        first = _transform_name(pipeline[0]) if pipeline else ''
        self.reads_bytes = first in BYTE_READERS
        if first in FILE_LOADERS:
            pipeline = pipeline[1:]
        with DefaultScope.overwrite_default_scope('mimlab'):
            self.pipeline = Compose(pipeline)
        self.rank, self.world_size = get_dist_info()
        sizes = np.asarray(self.shard_sizes(), dtype=np.int64)
        self._sizes = sizes
        self.samples_per_pass = int(sizes.sum())
        if self.samples_per_pass == 0:
            raise ValueError(f'{type(self).__name__}: the shards hold no samples ({self.describe()})')
        self.samples_per_epoch = int(samples_per_epoch or self.samples_per_pass)
        if self.samples_per_epoch < self.world_size:
            raise ValueError(f'samples_per_epoch={self.samples_per_epoch} is less than one sample per rank')
        # shared before the DataLoader starts its workers: persistent workers see what the main process sets
        self._state = torch.zeros(3, dtype=torch.int64).share_memory_()
        self._state[_BATCH] = 1
        self._skipped = torch.zeros(1, dtype=torch.int64).share_memory_()

    # -- what subclasses provide -------------------------------------------------------------------------------------

    def shard_sizes(self) -> list[int]:
        """Samples in each shard, in shard-list order."""
        raise NotImplementedError

    def read_shard(self, shard: int, start: int) -> Iterator[tuple[str, object]]:
        """``(where, raw)`` for samples ``start, start + 1, ...`` of shard ``shard``; ``where`` names shard and key."""
        raise NotImplementedError

    def to_results(self, raw) -> dict:
        """Pipeline input of one raw sample (``img_path``, ``img_bytes`` or ``img``, ``gt_label``, ...)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The configured source, for messages."""
        return ''

    # -- mmengine dataset surface ------------------------------------------------------------------------------------

    @property
    def metainfo(self) -> dict:
        return dict(self._metainfo)

    def full_init(self) -> None:
        """Nothing to do: the shard sizes are read in the constructor (mmengine's runner calls this)."""

    def __len__(self) -> int:
        """Samples this rank reads per epoch (L); the ``DataLoader`` has ``ceil(L / B)`` batches."""
        return self.samples_per_epoch // self.world_size

    @property
    def num_skipped_images(self) -> int:
        """How many unreadable samples ``skip_bad_images`` has replaced so far, over all DataLoader workers."""
        return int(self._skipped.item())

    # -- position state ----------------------------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return int(self._state[_EPOCH])

    def set_epoch(self, epoch: int) -> None:
        """Read epoch ``epoch`` on the next ``iter()``, from its start (clears :meth:`skip`)."""
        self._state[_EPOCH] = int(epoch)
        self._state[_SKIP] = 0

    def set_batch_size(self, batch_size: int) -> None:
        """The ``DataLoader``'s batch size, which decides how batches are dealt to workers."""
        if int(batch_size) < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        self._state[_BATCH] = int(batch_size)

    def skip(self, num_samples: int) -> None:
        """Start the current epoch after its first ``num_samples`` samples of this rank (whole batches).

        The same interface as :meth:`mimlab.datasets.ExactResumeSampler.skip`; holds until the next
        :meth:`set_epoch`.
        """
        batch = int(self._state[_BATCH])
        if not 0 <= num_samples <= len(self) or (num_samples % batch and num_samples != len(self)):
            raise ValueError(f'cannot skip {num_samples} samples of an epoch of {len(self)} in batches of {batch}')
        self._state[_SKIP] = int(num_samples)

    def state_dict(self) -> dict:
        """What decides the sample order; a checkpoint stores it to check that a resume reads the same order."""
        return dict(
            seed=self.seed,
            epoch=self.epoch,
            samples_per_epoch=self.samples_per_epoch,
            samples_per_pass=self.samples_per_pass,
            num_shards=len(self._sizes),
            world_size=self.world_size,
            batch_size=int(self._state[_BATCH]),
            shuffle=self.shuffle,
            shuffle_buffer=self.shuffle_buffer,
            seed_samples=self.seed_samples,
        )

    def mismatches(self, state: dict) -> list[str]:
        """The entries of a saved :meth:`state_dict` (other than the epoch) that differ from this dataset's."""
        mine = self.state_dict()
        diff = [k for k, v in state.items() if k in mine and k != 'epoch' and v != mine[k]]
        return [f'{k}: saved {state[k]}, now {mine[k]}' for k in diff]

    # -- order -------------------------------------------------------------------------------------------------------

    @lru_cache(maxsize=4)  # noqa: B019 - a few passes per dataset, the dataset lives as long as the run
    def _pass_order(self, pass_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """(shard order, cumulative sizes in that order) of pass ``pass_idx``."""
        n = len(self._sizes)
        order = np.random.default_rng((self.seed, pass_idx)).permutation(n) if self.shuffle else np.arange(n)
        return order, np.cumsum(self._sizes[order])

    def segments(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """``(shard, first, end)`` pieces of the flat positions ``[start, stop)``, in order."""
        out, pos, n = [], start, self.samples_per_pass
        while pos < stop:
            pass_idx, offset = divmod(pos, n)
            order, cum = self._pass_order(pass_idx)
            i = int(np.searchsorted(cum, offset, side='right'))  # empty shards are passed over
            first = offset - (int(cum[i - 1]) if i else 0)
            shard = int(order[i])
            count = min(int(self._sizes[shard]) - first, stop - pos)
            out.append((shard, first, first + count))
            pos += count
        return out

    def slot_plan(self, epoch: int, rank: int, workers: int, batch_size: int) -> list[tuple[int, int, int]]:
        """Per worker slot: (first flat position, samples, batches) in epoch ``epoch`` of rank ``rank``."""
        per_rank = len(self)
        base = (epoch * self.world_size + rank) * per_rank  # an epoch is R * L positions: E mod R roll over
        return [(base + s, n, k) for s, n, k in rank_slot_ranges(per_rank, batch_size, workers)]

    def _raw_stream(self, start: int, count: int) -> Iterator[tuple[str, object]]:
        """The raw samples of positions ``[start, start + count)`` in reading order; exactly ``count`` items
        (``BadSample`` in place of unreadable ones with ``skip_bad_images``)."""
        for shard, first, end in self.segments(start, start + count):
            got, last = 0, None
            try:
                for item in self.read_shard(shard, first):
                    yield item
                    got, last = got + 1, item[0]
                    if got == end - first:
                        break
            except Exception as e:
                if not self.skip_bad_images:
                    raise
                reason = f'{type(e).__name__}: {e}'
            else:
                total = int(self._sizes[shard])
                reason = f'truncated: it ends after {first + got} of its {total} samples (last: {last})'
            if got < end - first:
                for _ in range(end - first - got):
                    yield f'{self.shard_name(shard)}', BadSample(self.shard_name(shard), reason)

    def shard_name(self, shard: int) -> str:
        return str(shard)

    def _shuffled(self, stream: Iterator, rng: np.random.Generator) -> Iterator:
        """A bounded-buffer shuffle: fill ``shuffle_buffer`` items, then each new item replaces a random one, which
        leaves; the rest leaves in random order at the end. Every item leaves exactly once."""
        if not self.shuffle or self.shuffle_buffer <= 1:
            yield from stream
            return
        buf = []
        for item in stream:
            if len(buf) < self.shuffle_buffer:
                buf.append(item)
                continue
            j = int(rng.integers(len(buf)))
            buf[j], item = item, buf[j]
            yield item
        for j in rng.permutation(len(buf)):
            yield buf[j]

    # -- iteration ---------------------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict]:
        from mimlab.datasets.transforms.fast_loading import limit_worker_threads

        limit_worker_threads()
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch, skip, batch = (int(v) for v in self._state.tolist())
        done = skip // batch  # batches of this rank already trained in this epoch
        slot = (worker + done) % workers  # the DataLoader's round robin restarts at worker 0
        plan = self.slot_plan(epoch, self.rank, workers, batch)
        start, count, num_batches = plan[slot]
        consumed = min(len(range(slot, done, workers)) * batch, count)  # this slot's samples in the done batches
        rng = np.random.default_rng((self.seed, epoch, self.rank, slot))
        yield from self._prepared(self._slot_stream(start, count, consumed, rng), epoch)

    def _slot_stream(self, start: int, count: int, consumed: int, rng: np.random.Generator) -> Iterator:
        """``(position, where, raw)`` of a slot's samples in their shuffled order, from its ``consumed``-th on.

        The buffer's order depends only on positions, so it is computed on ``range(count)`` first; a resumed slot
        then starts reading at the earliest position it still has to give (not at its start), and keeps the samples
        read ahead of their turn, at most as many as the buffer held at that point of the uninterrupted run.
        """
        order = list(self._shuffled(iter(range(count)), rng))[consumed:]  # slot positions, in the order given
        if not order:
            return
        first = min(order)
        wanted = set(order)
        raw, pos, held = self._raw_stream(start + first, count - first), first, {}
        for q in order:
            while q not in held:
                item = next(raw)
                if pos in wanted:  # others were given before the resume
                    held[pos] = item
                pos += 1
            yield (start + q, *held.pop(q))

    def _prepared(self, stream: Iterator, epoch: int) -> Iterator[dict]:
        """The pipeline's output for each raw sample; with ``skip_bad_images`` a failure is replaced by the next
        good sample (or the last one at the end), so the output count equals the input count."""
        owed, last_good = [], None
        for pos, where, raw in stream:
            out = self._prepare(where, raw, epoch, pos)
            if out is None:
                owed.append(pos)
                continue
            yield out
            last_good = (where, raw)
            while owed:
                again = self._prepare(*last_good, epoch, owed.pop(0))
                if again is not None:
                    yield again
        if owed:
            if last_good is None:
                raise RuntimeError(f'{type(self).__name__}: every sample of this worker is unreadable')
            for pos in owed:
                yield self._prepare(*last_good, epoch, pos)

    def _prepare(self, where: str, raw, epoch: int, pos: int) -> dict | None:
        """Run the pipeline on one sample, its random transforms seeded from ``(seed, epoch, position)`` when
        ``seed_samples`` (the same draws whichever worker reads it, and after a resume)."""
        try:
            if isinstance(raw, BadSample):
                raise OSError(raw.reason)
            results = self.to_results(raw)
            if self.seed_samples:
                with self._rng_scope():
                    seed_sample(self.seed, epoch, pos)
                    out = self.pipeline(results)
            else:
                out = self.pipeline(results)
            if out is None:
                raise RuntimeError('the pipeline dropped it')
            return out
        except Exception as e:
            msg = f'{type(self).__name__}: {where}: {type(e).__name__}: {e}'
            if not self.skip_bad_images:
                raise RuntimeError(msg) from e
            self._skipped += 1
            print_log(
                f'skip_bad_images: {msg} (bad image {int(self._skipped.item())} of this run; using the next sample of '
                'this worker instead)',
                'current',
                logging.WARNING,
            )
            return None

    @staticmethod
    def _rng_scope():
        """In a worker nothing to restore; in the main process the CPU generators come back as they were."""
        return contextlib.nullcontext() if torch.utils.data.get_worker_info() is not None else cpu_rng_isolated()


def shard_label(url: str) -> str:
    """A short shard name for messages: the file name of a path, the URL otherwise."""
    return osp.basename(url) if '://' not in url and not url.startswith('pipe:') else url
