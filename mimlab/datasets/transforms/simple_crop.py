"""PixMIM's conservative training crop, on the decoded array.

Legend: ``H x W`` input, ``S`` output side, ``p`` padding.
"""

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mimlab.registry import TRANSFORMS


@TRANSFORMS.register_module()
class SimpleResizedCrop(BaseTransform):
    """Resize the shorter side to ``S``, random-crop ``S x S`` from the image padded by ``padding`` pixels, flip.

    The paper's replacement for RandomResizedCrop (PixMIM §3.2): the crop keeps almost the whole image, so the
    foreground is not lost. Equivalent to torchvision's ``Resize(S)`` -> ``RandomCrop(S, padding, 'reflect')`` ->
    ``RandomHorizontalFlip(flip_prob)``, but works on the uint8 array: the crop window is cut first and only the part
    of it that falls outside the image is padded, so no full padded copy is made.

    Resizing uses cv2 ``INTER_AREA`` when shrinking (an antialiasing box filter, close to PIL's antialiased bilinear
    that torchvision applies to PIL images) and ``INTER_LINEAR`` when enlarging. Randomness comes from numpy's global
    generator, which mmengine seeds per worker and ``ExactResumeSampler`` per sample.

    Args:
        scale: Output side S.
        padding: Padding p on every side before the random crop.
        padding_mode: numpy pad mode ('reflect' as the paper, 'constant', 'edge', 'symmetric').
        flip_prob: Probability of a horizontal flip.
    """

    def __init__(self, scale: int = 224, padding: int = 4, padding_mode: str = 'reflect', flip_prob: float = 0.5):
        super().__init__()
        self.scale = int(scale)
        self.padding = int(padding)
        self.padding_mode = padding_mode
        self.flip_prob = flip_prob

    def _resize_shorter(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        s = self.scale
        new_h, new_w = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)  # torchvision's rounding
        if (new_h, new_w) == (h, w):
            return img
        interp = cv2.INTER_AREA if new_h < h else cv2.INTER_LINEAR
        out = cv2.resize(img, (new_w, new_h), interpolation=interp)
        return out if out.ndim == img.ndim else out[..., None]

    def transform(self, results: dict) -> dict:
        img = self._resize_shorter(results['img'])  # (H', W', C) with min(H', W') = S
        h, w = img.shape[:2]
        p, s = self.padding, self.scale
        # top-left of the S x S window in padded coordinates, then in image coordinates (may be negative)
        top = np.random.randint(0, h + 2 * p - s + 1) - p
        left = np.random.randint(0, w + 2 * p - s + 1) - p
        window = img[max(top, 0) : min(top + s, h), max(left, 0) : min(left + s, w)]
        pad = ((max(-top, 0), max(top + s - h, 0)), (max(-left, 0), max(left + s - w, 0)))
        if any(pad[0]) or any(pad[1]):
            window = np.pad(window, (*pad, (0, 0)), mode=self.padding_mode)
        flip = bool(np.random.rand() < self.flip_prob)
        if flip:
            window = window[:, ::-1]
        results['img'] = np.ascontiguousarray(window)
        results['img_shape'] = (s, s)
        results['crop_offset'] = (top, left)  # in resized-image coordinates; negative = inside the padding
        results['flip'] = flip
        results['flip_direction'] = 'horizontal' if flip else None
        return results

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(scale={self.scale}, padding={self.padding}, '
            f'padding_mode={self.padding_mode!r}, flip_prob={self.flip_prob})'
        )
