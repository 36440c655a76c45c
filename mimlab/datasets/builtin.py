"""The built-in dataset: procedurally generated, labelled images that need no download.

Each class is one (shape, texture) pair: 5 shapes (disc, square, triangle, ring, cross) x 4 textures (solid, stripes,
checker, dots), so 10 classes by default and up to 20. Everything else is a per-sample nuisance drawn from a generator
seeded by (seed, split, index): foreground and background colours, position, size, rotation, texture period and phase,
pixel noise. Mean colour therefore says little about the class, while shape and texture do. ``colours='grey'`` draws
the same images with the colours fixed (dark grey background, light grey shape), for pixel-reconstruction methods whose
target would otherwise be mostly the random colours (``docs/a2mim.md``, the CPU demo of the second half).

Images are a contract: the demo numbers in ``docs/evaluation.md`` were measured on them, and ``tests/test_datasets.py``
pins golden pixel sums. Changing the drawing (even the order of the random draws) changes every image.

Legend: ``S`` image side (``img_size``), ``N`` samples.
"""

import os
import os.path as osp
from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np
from mmengine.dataset import BaseDataset

from mimlab.registry import DATASETS

SHAPES = ('disc', 'square', 'triangle', 'ring', 'cross')
TEXTURES = ('solid', 'stripes', 'checker', 'dots')
SPLITS = {'train': 0, 'val': 1, 'test': 2}
MAX_CLASSES = len(SHAPES) * len(TEXTURES)


def class_names(num_classes: int) -> tuple[str, ...]:
    """Class names in label order: every shape with the first texture, then with the second, ...

    Args:
        num_classes: Number of classes, 2 to 20.

    Returns:
        ``num_classes`` names such as ``'disc_solid'``; label ``k`` is shape ``k % 5`` with texture ``k // 5``.
    """
    if not 2 <= num_classes <= MAX_CLASSES:
        raise ValueError(f'num_classes must be in [2, {MAX_CLASSES}], got {num_classes}')
    return tuple(f'{s}_{t}' for t in TEXTURES for s in SHAPES)[:num_classes]


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)  # (S, S) each
    return x, y


def render(label: int, rng: np.random.Generator, size: int, colours: str = 'random') -> np.ndarray:
    """Draw one image of class ``label`` with nuisances from ``rng``.

    Args:
        label: Class index in ``[0, 20)``.
        rng: Generator the nuisances are drawn from; its state decides the image.
        size: Image side S.
        colours: 'random' (the colours are nuisances drawn from ``rng``) or 'grey': the colours are drawn all the same,
            so the shape, texture and noise are those of the 'random' image, and then replaced by a background of 30
            and a shape of 225 in every channel.

    Returns:
        (S, S, 3) uint8 image, BGR (the colours are random, so the order only matters for files written from it).
    """
    shape, texture = SHAPES[label % len(SHAPES)], TEXTURES[label // len(SHAPES)]
    x, y = _grid(size)
    cx, cy = rng.uniform(0.35, 0.65, 2) * size
    r = rng.uniform(0.22, 0.36) * size
    theta = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(theta), np.sin(theta)
    u = (x - cx) * c + (y - cy) * s  # shape-centred, rotated coordinates, (S, S)
    v = -(x - cx) * s + (y - cy) * c
    if shape == 'disc':
        inside = u * u + v * v <= r * r
    elif shape == 'square':
        inside = np.maximum(np.abs(u), np.abs(v)) <= 0.8 * r  # 0.8: about the disc's area
    elif shape == 'triangle':
        inside = np.ones_like(u, dtype=bool)
        for a in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
            inside &= u * np.cos(a) + v * np.sin(a) <= 0.5 * r
    elif shape == 'ring':
        d2 = u * u + v * v
        inside = (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    else:  # cross
        inside = ((np.abs(u) <= 0.3 * r) & (np.abs(v) <= r)) | ((np.abs(v) <= 0.3 * r) & (np.abs(u) <= r))

    # The texture lives in the rotated frame and its period scales with the shape, so it is not a fixed frequency
    # a linear filter could pick up regardless of the shape.
    period = rng.uniform(0.25, 0.45) * r
    phase = rng.uniform(0, period, 2)
    if texture == 'solid':
        pattern = np.ones_like(u, dtype=bool)
    elif texture == 'stripes':
        pattern = ((u + phase[0]) % period) < 0.5 * period
    elif texture == 'checker':
        pattern = (np.floor((u + phase[0]) / period) + np.floor((v + phase[1]) / period)) % 2 == 0
    else:  # dots
        du = (u + phase[0]) % period - 0.5 * period
        dv = (v + phase[1]) % period - 0.5 * period
        pattern = du * du + dv * dv <= (0.3 * period) ** 2

    bg = rng.uniform(0, 255, 3).astype(np.float32)
    fg = rng.uniform(0, 255, 3).astype(np.float32)
    while np.abs(fg - bg).sum() < 150:  # redraw until the shape stands out from the background
        fg = rng.uniform(0, 255, 3).astype(np.float32)
    if colours == 'grey':
        bg, fg = np.full(3, 30, np.float32), np.full(3, 225, np.float32)
    fg2 = 0.35 * fg + 0.65 * bg  # the texture's second colour, between foreground and background
    img = np.where(inside[..., None], np.where(pattern[..., None], fg, fg2), bg)  # (S, S, 3) float32
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


@DATASETS.register_module()
class BuiltinDataset(BaseDataset):
    """Procedural labelled images, rendered on access: no files, and no ``LoadImageFromFile`` in the pipeline.

    ``load_data_list`` only lists per-index specs (``render_idx``, ``gt_label``); ``get_data_info`` draws the image
    and adds ``img`` (S, S, 3) uint8 BGR, ``img_shape`` and ``ori_shape`` (S, S), as ``LoadImageFromFile`` would.
    Labels are balanced: sample ``i`` has label ``i % num_classes``. Sample ``i`` is drawn from a generator seeded with
    ``(seed, split, i)``, so it is the same image in every process and data-loader worker, and the splits differ.

    Rendering is vectorised numpy. Measured on one core of a 2-core CPU: 0.10 ms per image at S = 32, 0.29 ms at 64
    and 4.2 ms at 224. Each process (the main one and every data-loader worker) keeps the images it has rendered, so
    from the second epoch on a sample costs a copy instead of a render (the demo's 4,096 images at S = 48 take
    28 MB); ``cache=None`` does so when all N images take at most ``CACHE_LIMIT`` bytes.

    Args:
        split: 'train', 'val' or 'test' (different images for the same index).
        num_samples: Number of images N.
        img_size: Image side S, at least 8.
        num_classes: 2 to 20 (shape x texture classes, see :func:`class_names`).
        seed: Base seed of all splits.
        colours: 'random' (default) or 'grey': the same images with a fixed dark grey background and light grey shape
            (see :func:`render`).
        pipeline: Transforms applied to each sample.
        test_mode: mmengine test mode (a failing sample raises instead of being replaced by another).
        cache: Keep rendered images in memory, per process (True / False; None: when N x S x S x 3 bytes is at most
            ``CACHE_LIMIT``). Pipelines get a copy, so a transform that writes into its input cannot change the cache.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments (``lazy_init``, ``indices``, ``metainfo``,
            ``serialize_data`` which defaults to False here, ...).
    """

    CACHE_LIMIT = 256 * 2**20  # bytes of all N images, the most ``cache=None`` keeps per process

    def __init__(
        self,
        split: str = 'train',
        num_samples: int = 2000,
        img_size: int = 64,
        num_classes: int = 10,
        seed: int = 0,
        colours: str = 'random',
        pipeline: Sequence = (),
        test_mode: bool = False,
        cache: bool | None = None,
        **kwargs,
    ):
        if split not in SPLITS:
            raise ValueError(f'split must be one of {sorted(SPLITS)}, got {split!r}')
        if int(img_size) < 8:
            raise ValueError(f'img_size must be at least 8, got {img_size}')
        if int(num_samples) < 0:
            raise ValueError(f'num_samples must be >= 0, got {num_samples}')
        self.split, self.num_samples, self.img_size, self.seed = split, int(num_samples), int(img_size), int(seed)
        self.num_classes = int(num_classes)
        if colours not in ('random', 'grey'):
            raise ValueError(f"colours must be 'random' or 'grey', got {colours!r}")
        self.colours = colours
        nbytes = self.num_samples * self.img_size * self.img_size * 3
        self.cache = nbytes <= self.CACHE_LIMIT if cache is None else bool(cache)
        self._images = None  # (N, S, S, 3) uint8, allocated on first use (pages are only committed when written)
        self._rendered = None  # (N,) bool: which rows of _images hold their image
        metainfo = dict(classes=class_names(self.num_classes), **(kwargs.pop('metainfo', None) or {}))
        # The specs are two ints each; serialising them only costs start-up time.
        kwargs.setdefault('serialize_data', False)
        super().__init__(metainfo=metainfo, pipeline=list(pipeline), test_mode=test_mode, **kwargs)

    def load_data_list(self) -> list[dict]:
        """One spec per sample; ``render_idx`` survives mmengine's ``indices`` subsetting, ``sample_idx`` does not."""
        return [dict(render_idx=i, gt_label=i % self.num_classes) for i in range(self.num_samples)]

    def render(self, idx: int) -> tuple[np.ndarray, int]:
        """Draw sample ``idx`` of this split (any ``idx >= 0``, also beyond ``num_samples``).

        Args:
            idx: Sample index in the full, unsubsetted split.

        Returns:
            The (S, S, 3) uint8 BGR image and its label.
        """
        label = idx % self.num_classes
        rng = np.random.default_rng((self.seed, SPLITS[self.split], idx))
        return render(label, rng, self.img_size, self.colours), label

    def get_data_info(self, idx: int) -> dict:
        """The spec of sample ``idx`` plus its rendered ``img`` (S, S, 3) uint8 BGR, ``img_shape`` and ``ori_shape``."""
        info = dict(super().get_data_info(idx))
        img = self._image(info['render_idx'])
        info.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return info

    def _image(self, ridx: int) -> np.ndarray:
        """Image ``ridx`` of the split, from this process's cache when enabled; always an array the caller owns."""
        if not self.cache:
            return self.render(ridx)[0]
        if self._images is None:
            S = self.img_size
            self._images = np.empty((self.num_samples, S, S, 3), np.uint8)
            self._rendered = np.zeros(self.num_samples, bool)
        if not self._rendered[ridx]:
            self._images[ridx] = self.render(ridx)[0]
            self._rendered[ridx] = True
        return self._images[ridx].copy()

    def __getstate__(self) -> dict:
        # A pickled copy (spawned workers, deepcopy) starts with an empty cache instead of carrying the images.
        state = dict(self.__dict__)
        state['_images'] = state['_rendered'] = None
        return state


def write_builtin_dataset(
    out_dir: str,
    num_train: int = 2000,
    num_val: int = 500,
    img_size: int = 64,
    num_classes: int = 10,
    seed: int = 0,
    fmt: str = 'png',
    quality: int = 90,
) -> dict[str, int]:
    """Write the built-in dataset in ImageNet's folder layout, with ``meta/{split}.txt`` annotation files.

    Layout: ``out_dir/{train,val}/{LL}_{class}/{class}_{idx:06d}.{fmt}`` and ``out_dir/meta/{train,val}.txt`` with
    ``{LL}_{class}/{file} {label}`` lines. The two-digit label prefix ``LL`` makes the sorted folder order (what a
    folder scan uses) equal the label order, so :class:`~mimlab.datasets.ImageNet` gives the same labels whether it
    reads the annotation files or scans the folders. Sample ``idx`` of a split is ``BuiltinDataset.render(idx)``.

    Args:
        out_dir: Output root; created if missing. Existing files of the same names are overwritten.
        num_train: Images in ``train/``.
        num_val: Images in ``val/``.
        img_size: Image side.
        num_classes: Number of classes (2 to 20).
        seed: Base seed, as in :class:`BuiltinDataset`.
        fmt: 'png' (lossless: files decode to exactly the rendered images) or 'jpg'.
        quality: JPEG quality (only for 'jpg').

    Returns:
        The number of images written per split, e.g. ``{'train': 2000, 'val': 500}``.
    """
    if fmt not in ('png', 'jpg'):
        raise ValueError(f'fmt must be "png" or "jpg", got {fmt!r}')
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == 'jpg' else []
    os.makedirs(osp.join(out_dir, 'meta'), exist_ok=True)
    counts = {}
    for split, n in (('train', num_train), ('val', num_val)):
        ds = BuiltinDataset(
            split=split, num_samples=n, img_size=img_size, num_classes=num_classes, seed=seed, lazy_init=True
        )
        names = ds.metainfo['classes']
        lines = []
        for idx in range(n):
            img, label = ds.render(idx)
            rel = f'{label:02d}_{names[label]}/{names[label]}_{idx:06d}.{fmt}'
            path = osp.join(out_dir, split, rel)
            os.makedirs(osp.dirname(path), exist_ok=True)
            if not cv2.imwrite(path, img, params):  # cv2 writes BGR arrays, which is what render returns
                raise OSError(f'could not write {path}')
            lines.append(f'{rel} {label}\n')
        with open(osp.join(out_dir, 'meta', f'{split}.txt'), 'w') as f:
            f.writelines(lines)
        counts[split] = n
    return counts
