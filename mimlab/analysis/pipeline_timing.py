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
