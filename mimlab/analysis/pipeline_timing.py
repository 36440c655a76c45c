"""Input-pipeline benchmark behind ``tools/analysis_tools/benchmark_data.py``: images/s per worker core of data
pipelines on real JPEG files, and the JPEGs to read (:func:`make_jpegs`, rendered from the built-in dataset)."""

import copy
import functools
import os
import os.path as osp
import statistics
import time

import cv2
import numpy as np
import torch


def make_jpegs(
    out_dir: str, num: int, size: tuple[int, int] = (500, 375), quality: int = 90, seed: int = 0
) -> list[str]:
    """Write ``num`` JPEGs of ``size = (w, h)`` rendered from the built-in dataset: ImageNet-like files to read.

    The built-in renderer draws squares; each image is drawn at ``max(w, h)`` and cut to ``h x w``.

    Returns:
        The file paths, in index order.
    """
    from mimlab.datasets.builtin import BuiltinDataset

    w, h = size
    ds = BuiltinDataset(split='train', num_samples=num, img_size=max(w, h), seed=seed, lazy_init=True)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for idx in range(num):
        img, _ = ds.render(idx)
        path = osp.join(out_dir, f'{idx:06d}.jpg')
        if not cv2.imwrite(path, img[:h, :w], [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
            raise OSError(f'could not write {path}')
        paths.append(path)
    return paths


class _PipelineDataset(torch.utils.data.Dataset):
    def __init__(self, paths: list[str], pipeline: list, labels: bool = True):
        from mmcv.transforms import Compose
        from mmengine.registry import DefaultScope

        self.paths, self.labels = paths, labels
        with DefaultScope.overwrite_default_scope('mimlab'):
            self.pipeline = Compose(copy.deepcopy(pipeline))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, idx: int):
        results = dict(img_path=self.paths[idx], sample_idx=idx)
        if self.labels:
            results['gt_label'] = idx % 1000  # as an ImageNet dataset gives every sample its class
        out = self.pipeline(results)
        if out is None:
            raise RuntimeError(f'pipeline dropped {self.paths[idx]}')
        return out


def _worker_init(worker_id: int) -> None:
    np.random.seed(1000 + worker_id)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def benchmark_pipelines(
    pipelines: dict[str, list[dict]],
    paths: list[str],
    workers: int = 0,
    batch_size: int = 32,
    repeats: int = 1,
    collates: dict | None = None,
    labels: bool = True,
) -> dict[str, dict]:
    """Images/s of each pipeline over ``paths`` through a ``DataLoader``, collated as its project collates.

    The pipelines take turns, one pass each per round, so load from other processes on a shared machine hits them
    alike; the median pass of each counts.

    Args:
        pipelines: Name -> transform configs (mimlab scope unless prefixed with another scope, e.g.
            ``mmpretrain.``, whose modules the caller has registered).
        paths: Image files; each sample starts as ``dict(img_path=...)``.
        workers: DataLoader workers per pipeline; 0 runs in this process.
        batch_size: Collated batch size (collation is part of the measured work).
        repeats: Rounds.
        collates: Name -> collate function, or its config (``dict(type='mimlab.default_collate')``, looked up as
            mmengine's Runner does); pipelines not named use mmengine's ``default_collate`` (mmpretrain's configs).
        labels: Give each sample a ``gt_label`` (``index % 1000``), as an ImageNet dataset does; the label tensors
            then cross from the workers with the images.

    Returns:
        Name -> ``images_per_s``, ``images_per_s_per_core`` (divided by ``max(workers, 1)``), ``pass_times``,
        ``num_images``.
    """
    from mmengine.dataset import default_collate
    from mmengine.registry import FUNCTIONS

    collates = dict(collates or {})
    for name, fn in collates.items():
        if isinstance(fn, dict):
            found = FUNCTIONS.get(fn['type'])
            if found is None:
                raise KeyError(f'collate function {fn["type"]!r} of {name!r} is not registered')
            collates[name] = functools.partial(found, **{k: v for k, v in fn.items() if k != 'type'})
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    loaders = {}
    for name, pipeline in pipelines.items():
        loaders[name] = torch.utils.data.DataLoader(
            _PipelineDataset(paths, pipeline, labels),
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=collates.get(name, default_collate),
            worker_init_fn=_worker_init if workers else None,
            persistent_workers=workers > 0,
        )
        if workers:
            next(iter(loaders[name]))  # start the workers outside the timing
    np.random.seed(0)
    times = {name: [] for name in pipelines}
    for _ in range(repeats):
        for name, loader in loaders.items():
            t0 = time.perf_counter()
            n = sum(len(batch['inputs']) for batch in loader)
            times[name].append(time.perf_counter() - t0)
    out = {}
    for name, ts in times.items():
        ips = len(paths) / statistics.median(ts)
        out[name] = dict(images_per_s=ips, images_per_s_per_core=ips / max(workers, 1), pass_times=ts, num_images=n)
    return out


def benchmark_pipeline(pipeline: list[dict], paths: list[str], **kwargs) -> dict:
    """:func:`benchmark_pipelines` for one pipeline."""
    return benchmark_pipelines(dict(pipeline=pipeline), paths, **kwargs)['pipeline']


def benchmark_files_vs_shards(
    pipeline: list[dict],
    paths: list[str],
    shard_dir: str,
    workers: int = 0,
    batch_size: int = 32,
    repeats: int = 1,
    collate: dict | None = None,
    samples_per_shard: int = 64,
    shuffle_buffer: int = 256,
) -> dict[str, dict]:
    """Images/s of one pipeline reading the same JPEGs as files and from WebDataset shards.

    The shards are written from ``paths`` into ``shard_dir`` (the files' bytes, not re-encoded; reused when its
    manifest lists as many samples). Both sources are shuffled (a random file order; the shards' shard order and
    buffer), labelled, and batched and collated alike; they take turns, one pass each per round, and the median pass
    counts.

    Args:
        pipeline: Transform configs; its first transform reads ``img_path`` (files) or ``img_bytes`` (shards).
        paths: The JPEG files.
        shard_dir: Where the shards are (written).
        workers: DataLoader workers per source; 0 runs in this process.
        batch_size: Collated batch size.
        repeats: Rounds.
        collate: Collate config (default ``mimlab.default_collate``).
        samples_per_shard: Shard size when writing.
        shuffle_buffer: The shards' buffer.

    Returns:
        ``files`` / ``shards`` -> ``images_per_s``, ``images_per_s_per_core``, ``pass_times``, ``num_images``.
    """
    from mmengine.registry import FUNCTIONS

    from mimlab.datasets.shards import MANIFEST, WebDataset, read_manifest, samples_from_files, write_shards

    manifest = osp.join(shard_dir, MANIFEST)
    if not (osp.isfile(manifest) and read_manifest(manifest)['samples'] == len(paths)):
        infos = [dict(img_path=p, gt_label=i % 1000) for i, p in enumerate(paths)]
        write_shards(samples_from_files(infos), shard_dir, samples_per_shard=samples_per_shard, progress=False)
    collate = dict(collate or dict(type='mimlab.default_collate'))
    collate_fn = functools.partial(FUNCTIONS.get(collate.pop('type')), **collate)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope('mimlab'):
        shards = WebDataset(
            urls=[s['name'] for s in read_manifest(manifest)['shards']],
            data_root=shard_dir,
            shuffle_buffer=shuffle_buffer,
            pipeline=copy.deepcopy(pipeline),
        )
    shards.set_batch_size(batch_size)
    common = dict(
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_fn,
        worker_init_fn=_worker_init if workers else None,
        persistent_workers=workers > 0,
    )
    loaders = dict(
        files=torch.utils.data.DataLoader(_PipelineDataset(paths, pipeline), shuffle=True, **common),
        shards=torch.utils.data.DataLoader(shards, **common),
    )
    if workers:
        for loader in loaders.values():
            next(iter(loader))  # start the workers outside the timing
    times = {name: [] for name in loaders}
    counts = {}
    for r in range(repeats):
        shards.set_epoch(r)
        for name, loader in loaders.items():
            t0 = time.perf_counter()
            counts[name] = sum(len(batch['inputs']) for batch in loader)
            times[name].append(time.perf_counter() - t0)
    out = {}
    for name, ts in times.items():
        ips = counts[name] / statistics.median(ts)
        out[name] = dict(
            images_per_s=ips, images_per_s_per_core=ips / max(workers, 1), pass_times=ts, num_images=counts[name]
        )
    return out
