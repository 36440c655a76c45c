"""Transforms of the classification (linear-probe / fine-tune) pipelines, on HWC uint8 BGR arrays."""

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

from mimlab.registry import TRANSFORMS

from .processing import _PIL, pillow_resize


@TRANSFORMS.register_module()
class ResizeEdge(BaseTransform):
    """Resize so that the ``edge`` ('short' or 'long') side equals ``scale``, keeping the aspect ratio.

    PIL's antialiased resize (as torchvision's ``Resize`` on PIL images) with the given interpolation; the same
    pixels from ``mimlab._jpeg.resample`` for bilinear and bicubic colour images (:func:`pillow_resize`).
    """

    def __init__(self, scale: int, edge: str = 'short', interpolation: str = 'bicubic'):
        super().__init__()
        if edge not in ('short', 'long'):
            raise ValueError(f'edge must be "short" or "long", got {edge!r}')
        self.scale, self.edge, self.interpolation = int(scale), edge, interpolation

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        short_is_h = (h <= w) == (self.edge == 'short')
        new_h, new_w = (self.scale, int(self.scale * w / h)) if short_is_h else (int(self.scale * h / w), self.scale)
        if (new_h, new_w) != (h, w):
            img = pillow_resize(img, (new_h, new_w), self.interpolation)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class TimmRandAugment(BaseTransform):
    """timm's RandAugment from a config string (``rand-m9-mstd0.5-inc1`` in the MAE fine-tuning recipe).

    timm's ops work on PIL RGB images; this wraps them for BGR arrays. ``img_mean`` (RGB, 0-255) is the fill colour
    of geometric ops, as timm's ``create_transform`` sets it from the dataset mean; ``img_size`` sets the largest
    translation (45% of the side, as timm).
    """

    def __init__(
        self,
        config_str: str = 'rand-m9-mstd0.5-inc1',
        interpolation: str = 'bicubic',
        img_mean: tuple[int, int, int] = (124, 116, 104),
        img_size: int = 224,
    ):
        super().__init__()
        from timm.data.auto_augment import rand_augment_transform

        # timm's increasing posterize keeps 4 - int(4 * m / 10) bits, i.e. 0 bits at the magnitude cap m = 10, and
        # Pillow >= 10 rejects 0 bits ('bits must be between or equal to 1 and 8'). Capping m just below 10 turns that
        # rare draw (m ~ N(9, 0.5) clipped) into 1 bit and changes nothing else measurably.
        self.config_str = config_str
        # translation limit as timm's create_transform: 45% of the image side
        hparams = dict(
            magnitude_max=9.99,
            translate_const=int(0.45 * img_size),
            img_mean=tuple(int(v) for v in img_mean),
            interpolation=_PIL[interpolation],
        )
        self.op = rand_augment_transform(config_str, hparams)

    def transform(self, results: dict) -> dict:
        rgb = Image.fromarray(np.ascontiguousarray(results['img'][..., ::-1]))
        results['img'] = np.ascontiguousarray(np.asarray(self.op(rgb))[..., ::-1])
        return results
