"""Random resized crops on HWC uint8 arrays.

Randomness comes from numpy's global generator, which mmengine seeds per worker, so pipelines are reproducible.
"""

import math

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

from mimlab.registry import TRANSFORMS

_PIL = {'nearest': Image.NEAREST, 'bilinear': Image.BILINEAR, 'bicubic': Image.BICUBIC, 'lanczos': Image.LANCZOS}
_CV2 = {
    'nearest': cv2.INTER_NEAREST,
    'bilinear': cv2.INTER_LINEAR,
    'bicubic': cv2.INTER_CUBIC,
    'lanczos': cv2.INTER_LANCZOS4,
}


def resize(img: np.ndarray, size: tuple[int, int], interpolation: str, backend: str) -> np.ndarray:
    """Resize (H, W, C) uint8 to ``size = (w, h)`` with PIL (antialiased, as torchvision on PIL images) or cv2."""
    if (img.shape[1], img.shape[0]) == tuple(size):
        return img
    if backend == 'pillow':
        return np.asarray(Image.fromarray(img).resize(tuple(size), _PIL[interpolation]))
    if backend == 'cv2':
        return cv2.resize(img, tuple(size), interpolation=_CV2[interpolation])
    raise ValueError(f'backend must be "pillow" or "cv2", got {backend!r}')


class _ResizedCropBase(BaseTransform):
    def __init__(self, scale, crop_ratio_range, aspect_ratio_range, interpolation, backend):
        super().__init__()
        self.scale = (scale, scale) if isinstance(scale, int) else tuple(scale)  # (w, h)
        self.crop_ratio_range = tuple(crop_ratio_range)
        self.aspect_ratio_range = tuple(aspect_ratio_range)
        if interpolation not in _PIL:
            raise ValueError(f'interpolation must be one of {sorted(_PIL)}, got {interpolation!r}')
        self.interpolation = interpolation
        self.backend = backend

    def crop_box(self, h: int, w: int) -> tuple[int, int, int, int]:
        raise NotImplementedError

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        top, left, ch, cw = self.crop_box(h, w)
        crop = img[top : top + ch, left : left + cw]  # a view: no copy before the resize
        results['img'] = resize(np.ascontiguousarray(crop), self.scale, self.interpolation, self.backend)
        results['img_shape'] = results['img'].shape[:2]
        results['crop_bbox'] = (left, top, left + cw, top + ch)
        return results

    def _log_ratio(self) -> float:
        lo, hi = math.log(self.aspect_ratio_range[0]), math.log(self.aspect_ratio_range[1])
        return math.exp(np.random.uniform(lo, hi))


@TRANSFORMS.register_module()
class RandomResizedCrop(_ResizedCropBase):
    """torchvision's RandomResizedCrop: up to ``max_attempts`` draws of (area, log-aspect) that fit the image, else
    a centre crop with the aspect ratio clamped to the range; then resize to ``scale``.

    Args:
        scale: Output size, int or (w, h).
        crop_ratio_range: Range of the crop area as a fraction of the image area.
        aspect_ratio_range: Range of w / h, sampled log-uniformly.
        max_attempts: Draws before the centre-crop fallback.
        interpolation: 'nearest', 'bilinear', 'bicubic' or 'lanczos'.
        backend: 'pillow' (antialiased, torchvision-equivalent) or 'cv2'.
    """

    def __init__(
        self,
        scale,
        crop_ratio_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        max_attempts=10,
        interpolation='bilinear',
        backend='pillow',
    ):
        super().__init__(scale, crop_ratio_range, aspect_ratio_range, interpolation, backend)
        self.max_attempts = max_attempts

    def crop_box(self, h, w):
        area = h * w
        for _ in range(self.max_attempts):
            target = area * np.random.uniform(*self.crop_ratio_range)
            ratio = self._log_ratio()
            cw = int(round(math.sqrt(target * ratio)))
            ch = int(round(math.sqrt(target / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                return np.random.randint(0, h - ch + 1), np.random.randint(0, w - cw + 1), ch, cw
        in_ratio = w / h
        if in_ratio < self.aspect_ratio_range[0]:
            cw, ch = w, int(round(w / self.aspect_ratio_range[0]))
        elif in_ratio > self.aspect_ratio_range[1]:
            ch, cw = h, int(round(h * self.aspect_ratio_range[1]))
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw


@TRANSFORMS.register_module()
class MAERandomResizedCrop(_ResizedCropBase):
    """The official MAE crop (from BYOL's TF code): ONE draw, no retry loop.

    Area fraction uniform in ``crop_ratio_range``, aspect log-uniform; the crop side lengths are clamped to the image,
    so a crop never fails and the area/aspect statistics differ slightly from torchvision's retry loop.
    """

    def __init__(
        self,
        scale,
        crop_ratio_range=(0.2, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        interpolation='bicubic',
        backend='pillow',
    ):
        super().__init__(scale, crop_ratio_range, aspect_ratio_range, interpolation, backend)

    def crop_box(self, h, w):
        target = h * w * np.random.uniform(*self.crop_ratio_range)
        ratio = self._log_ratio()
        cw = min(max(int(round(math.sqrt(target * ratio))), 1), w)
        ch = min(max(int(round(math.sqrt(target / ratio))), 1), h)
        return np.random.randint(0, h - ch + 1), np.random.randint(0, w - cw + 1), ch, cw
