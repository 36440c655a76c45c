"""Decode every image of a dataset and list those that cannot be read (``tools/misc/verify_dataset.py``)."""

import io
from multiprocessing import get_context

from mmengine.utils import ProgressBar
from PIL import Image

__all__ = ['check_image', 'check_image_bytes', 'verify_image_files']


def check_image(path: str) -> str | None:
    """Fully decode the image at ``path``; ``None`` when it is readable, else the reason it is not."""
    try:
        with open(path, 'rb') as f:
            if not f.read(1):
                return 'empty file'
        with Image.open(path) as img:
            img.load()  # decodes every pixel: a truncated JPEG fails here, not at open()
            if img.width == 0 or img.height == 0:
                return f'no pixels ({img.width} x {img.height})'
    except Exception as e:  # missing, unreadable, not an image, truncated ...
        return f'{type(e).__name__}: {e}'
    return None


def check_image_bytes(data: bytes) -> str | None:
    """Fully decode an encoded image held in memory (a shard member); ``None`` when it is readable, else why not."""
    if not data:
        return 'empty member'
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.width == 0 or img.height == 0:
                return f'no pixels ({img.width} x {img.height})'
    except Exception as e:
        return f'{type(e).__name__}: {e}'
    return None


def verify_image_files(paths: list[str], workers: int = 1, progress: bool = True) -> list[tuple[int, str, str]]:
    """``(index, path, reason)`` for every unreadable file of ``paths`` (indices into ``paths``), in order.

    Args:
        paths: Image files, e.g. ``[info['img_path'] for info in dataset]``.
        workers: Processes that decode in parallel.
        progress: Show a progress bar on stdout.
    """
    bar = ProgressBar(len(paths)) if progress and paths else None
    bad = []
    if workers > 1:
        with get_context('spawn').Pool(workers) as pool:  # a fork of a process with torch's threads can deadlock
            results = pool.imap(check_image, paths, chunksize=16)
            for i, reason in enumerate(results):
                if reason is not None:
                    bad.append((i, paths[i], reason))
                if bar:
                    bar.update()
    else:
        for i, path in enumerate(paths):
            reason = check_image(path)
            if reason is not None:
                bad.append((i, path, reason))
            if bar:
                bar.update()
    return bad
