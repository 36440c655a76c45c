"""Random resized crops on HWC uint8 arrays.

Randomness comes from numpy's global generator, which mmengine seeds in every data-loader worker and mimlab's
``ExactResumeSampler`` before each sample (from the seed, the epoch and the index), so pipelines are reproducible.
``RandomResizedCrop`` draws exactly the numbers mmpretrain's does, in the same order, so with the same numpy seed
both pick the same crops.

Legend: ``H x W`` input image, ``h x w`` crop, ``C`` channels (or none for a grey image).
"""

import math

import cv2
import numpy as np
import PIL
from mmcv.transforms import BaseTransform
from PIL import Image

from mimlab.registry import TRANSFORMS

try:
    from mimlab import _jpeg  # Pillow-exact resampling (mimlab/csrc/resample.c), optional
except ImportError:  # pragma: no cover - built without a compiler or libjpeg headers
    _jpeg = None

_PILLOW_13 = int(PIL.__version__.split('.')[0]) >= 13  # Pillow 13 runs the vertical pass first for tall shrinks
_EXACT = {'bilinear': 0, 'bicubic': 1}
_PIL = {'nearest': Image.NEAREST, 'bilinear': Image.BILINEAR, 'bicubic': Image.BICUBIC, 'lanczos': Image.LANCZOS}
_CV2 = {
    'nearest': cv2.INTER_NEAREST,
    'bilinear': cv2.INTER_LINEAR,
    'bicubic': cv2.INTER_CUBIC,
    'lanczos': cv2.INTER_LANCZOS4,
}


def pillow_resize(img: np.ndarray, size: tuple[int, int], interpolation: str) -> np.ndarray:
    """``PIL.Image.resize`` of an array to ``size = (h, w)``: the installed Pillow's pixels.

    A 3-channel uint8 image with bilinear or bicubic interpolation goes through ``mimlab._jpeg.resample`` (Pillow's
    arithmetic and pass order in SIMD C, bit for bit, ~5-8x faster) when the extension is built; everything else
    through Pillow itself. Any channel order: BGR stays BGR.
    """
    h, w = size
    if (
        _jpeg is not None
        and interpolation in _EXACT
        and img.dtype == np.uint8
        and img.ndim == 3
        and img.shape[2] == 3
        and img.strides[1:] == (3, 1)
        and img.strides[0] > 0
    ):
        out = np.empty((h, w, 3), np.uint8)
        _jpeg.resample(img, out, _EXACT[interpolation], _PILLOW_13)
        return out
    return np.asarray(Image.fromarray(img).resize((w, h), _PIL[interpolation]))


def resize(img: np.ndarray, size: tuple[int, int], interpolation: str, backend: str) -> np.ndarray:
    """Resize an image to ``size = (h, w)``.

    Args:
        img: (H, W, C) or (H, W) uint8; may be a strided view.
        size: Output (h, w).
        interpolation: 'nearest', 'bilinear', 'bicubic' or 'lanczos'.
        backend: 'pillow' (antialiased when shrinking, what torchvision does to PIL images) or 'cv2' (no
            antialiasing, faster).

    Returns:
        (h, w, C) or (h, w) uint8; ``img`` itself if it already has that size.
    """
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    if backend == 'pillow':
        return pillow_resize(img, size, interpolation)
    if backend == 'cv2':
        return cv2.resize(img, (w, h), interpolation=_CV2[interpolation])
    raise ValueError(f'backend must be "pillow" or "cv2", got {backend!r}')


class _ResizedCropBase(BaseTransform):
    """Cut the window that :meth:`crop_box` draws, then resize it to ``scale``."""

    def __init__(self, scale, crop_ratio_range, aspect_ratio_range, interpolation, backend):
        super().__init__()
        # (h, w), as mmpretrain's RandomResizedCrop (mmcv's Resize uses (w, h)).
        self.scale = (int(scale), int(scale)) if isinstance(scale, (int, np.integer)) else tuple(map(int, scale))
        self.crop_ratio_range = tuple(crop_ratio_range)
        self.aspect_ratio_range = tuple(aspect_ratio_range)
        if len(self.scale) != 2 or min(self.scale) <= 0:
            raise ValueError(f'scale must be a positive int or (h, w), got {scale!r}')
        for key in ('crop_ratio_range', 'aspect_ratio_range'):
            lo, hi = getattr(self, key)
            if not 0 < lo <= hi:
                raise ValueError(f'{key} must be (low, high) with 0 < low <= high, got {(lo, hi)}')
        if interpolation not in _PIL:
            raise ValueError(f'interpolation must be one of {sorted(_PIL)}, got {interpolation!r}')
        if backend not in ('pillow', 'cv2'):
            raise ValueError(f'backend must be "pillow" or "cv2", got {backend!r}')
        self.interpolation = interpolation
        self.backend = backend

    def crop_box(self, h: int, w: int) -> tuple[int, int, int, int]:
        """Draw a crop of an ``h x w`` image: ``(top, left, crop_h, crop_w)``."""
        raise NotImplementedError

    def transform(self, results: dict) -> dict:
        """Crop and resize ``results['img']``; sets ``img_shape`` and ``crop_bbox`` (x1, y1, x2, y2), x2/y2 exclusive.

        Args:
            results: With ``img`` (H, W, C) or (H, W) uint8.

        Returns:
            ``results`` with ``img`` of shape ``scale``.
        """
        img = results['img']
        top, left, ch, cw = self.crop_box(*img.shape[:2])
        crop = img[top : top + ch, left : left + cw]  # a view: the only copy is the resize's output
        results['img'] = resize(crop, self.scale, self.interpolation, self.backend)
        results['img_shape'] = results['img'].shape[:2]
        results['crop_bbox'] = (left, top, left + cw, top + ch)
        return results

    def _draw_area_and_ratio(self, area: int) -> tuple[float, float]:
        # Area uniform, aspect ratio log-uniform (so r and 1/r are equally likely): torchvision's and BYOL's draws.
        target = area * np.random.uniform(*self.crop_ratio_range)
        lo, hi = math.log(self.aspect_ratio_range[0]), math.log(self.aspect_ratio_range[1])
        return target, math.exp(np.random.uniform(lo, hi))

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(scale={self.scale}, crop_ratio_range={self.crop_ratio_range}, '
            f'aspect_ratio_range={self.aspect_ratio_range}, interpolation={self.interpolation!r}, '
            f'backend={self.backend!r})'
        )


@TRANSFORMS.register_module()
class RandomResizedCrop(_ResizedCropBase):
    """torchvision's RandomResizedCrop on numpy arrays.

    Up to ``max_attempts`` draws of (area, log-aspect); the first crop that fits the image is taken at a uniform
    position. If none fits, a centre crop of the whole image with its aspect ratio clamped to ``aspect_ratio_range``.
    Then the crop is resized to ``scale``. The crop parameters and the draw order equal mmpretrain's (numpy RNG).

    Args:
        scale: Output size, an int or (h, w) as in mmpretrain.
        crop_ratio_range: Range of the crop area as a fraction of the image area.
        aspect_ratio_range: Range of the crop's w / h, sampled log-uniformly.
        max_attempts: Draws before the centre-crop fallback.
        interpolation: 'nearest', 'bilinear', 'bicubic' or 'lanczos'.
        backend: 'pillow' (antialiased; torchvision's PIL path) or 'cv2'.
    """

    def __init__(
        self,
        scale: int | tuple[int, int],
        crop_ratio_range: tuple[float, float] = (0.08, 1.0),
        aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
        max_attempts: int = 10,
        interpolation: str = 'bilinear',
        backend: str = 'pillow',
    ):
        super().__init__(scale, crop_ratio_range, aspect_ratio_range, interpolation, backend)
        self.max_attempts = int(max_attempts)

    def crop_box(self, h: int, w: int) -> tuple[int, int, int, int]:
        """Draw a crop of an ``h x w`` image: ``(top, left, crop_h, crop_w)``."""
        for _ in range(self.max_attempts):
            target, ratio = self._draw_area_and_ratio(h * w)
            cw = int(round(math.sqrt(target * ratio)))
            ch = int(round(math.sqrt(target / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                return np.random.randint(0, h - ch + 1), np.random.randint(0, w - cw + 1), ch, cw
        lo, hi = self.aspect_ratio_range
        if w / h < lo:  # too tall: full width
            cw, ch = w, int(round(w / lo))
        elif w / h > hi:  # too wide: full height
            cw, ch = int(round(h * hi)), h
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f', max_attempts={self.max_attempts})'


@TRANSFORMS.register_module()
class MAERandomResizedCrop(_ResizedCropBase):
    """The official MAE crop (after BYOL's TF code): ONE draw, no retry loop.

    Area fraction uniform in ``crop_ratio_range``, aspect ratio log-uniform, ``crop_w = round(sqrt(area * r))`` and
    ``crop_h = round(sqrt(area / r))`` clamped to the image, position uniform. A crop never fails, but clamping makes
    large-area crops squarer and smaller than drawn, so the statistics differ slightly from torchvision's retry loop.
    The sides are also kept >= 1 (the reference would cut an empty crop from a tiny area).

    Args:
        scale: Output size, an int or (h, w).
        crop_ratio_range: Range of the crop area as a fraction of the image area.
        aspect_ratio_range: Range of the crop's w / h, sampled log-uniformly.
        interpolation: 'nearest', 'bilinear', 'bicubic' or 'lanczos'.
        backend: 'pillow' (antialiased; the official code's PIL path) or 'cv2'.
    """

    def __init__(
        self,
        scale: int | tuple[int, int],
        crop_ratio_range: tuple[float, float] = (0.2, 1.0),
        aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
        interpolation: str = 'bicubic',
        backend: str = 'pillow',
    ):
        super().__init__(scale, crop_ratio_range, aspect_ratio_range, interpolation, backend)

    def crop_box(self, h: int, w: int) -> tuple[int, int, int, int]:
        """Draw a crop of an ``h x w`` image: ``(top, left, crop_h, crop_w)``; uses exactly four numpy draws."""
        target, ratio = self._draw_area_and_ratio(h * w)
        cw = min(max(int(round(math.sqrt(target * ratio))), 1), w)
        ch = min(max(int(round(math.sqrt(target / ratio))), 1), h)
        return np.random.randint(0, h - ch + 1), np.random.randint(0, w - cw + 1), ch, cw
