"""The CPU half of the GPU input path: ship the encoded JPEG and its crop, decode and crop on the device.

:class:`PackEncodedWithCrop` reads the file, draws the crop box from the header size (the same draws as
:class:`~mimlab.datasets.transforms.LoadImageRandomResizedCrop`) and the flip, and packs the undecoded bytes.
Collate with ``pseudo_collate`` (the byte strings differ in length); :class:`~mimlab.models.GPUDecodeDataPreprocessor`
then decodes the batch with ``torchvision.io.decode_jpeg(list, device=...)`` (nvJPEG on CUDA), crops, resizes, flips
and normalises on the device. A worker's work shrinks to a file read and a header parse.

Legend: ``H x W`` image, ``n`` encoded bytes.
"""

import mmengine.fileio as fileio
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mimlab.registry import TRANSFORMS
from mimlab.structures import DataSample

from .fast_loading import image_header
from .processing import MAERandomResizedCrop, RandomResizedCrop

_CROPS = {'MAERandomResizedCrop': MAERandomResizedCrop, 'RandomResizedCrop': RandomResizedCrop}


@TRANSFORMS.register_module()
class PackEncodedWithCrop(BaseTransform):
    """File -> ``dict(inputs=(n,) uint8 encoded bytes, data_samples=DataSample)`` with the crop and flip to apply.

    Takes ``img_bytes`` instead of reading ``img_path`` when a streamed dataset gives the encoded image.

    The sample's meta information holds ``crop_bbox`` (x1, y1, x2, y2) in the full image, ``flip`` (bool),
    ``ori_shape`` (H, W), ``img_shape`` (the output size) and ``img_path``; ``gt_label`` is kept when present.

    Args:
        scale: Output size the device will resize to, an int or (h, w).
        crop_ratio_range: Range of the crop area as a fraction of the image area.
        aspect_ratio_range: Range of the crop's w / h, sampled log-uniformly.
        crop_type: 'MAERandomResizedCrop' or 'RandomResizedCrop' (whose draws to use).
        flip_prob: Probability of a horizontal flip.
        backend_args: mmengine file backend arguments.
    """

    def __init__(
        self,
        scale: int | tuple[int, int],
        crop_ratio_range: tuple[float, float] = (0.2, 1.0),
        aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
        crop_type: str = 'MAERandomResizedCrop',
        flip_prob: float = 0.5,
        backend_args: dict | None = None,
    ):
        super().__init__()
        if crop_type not in _CROPS:
            raise ValueError(f'crop_type must be one of {sorted(_CROPS)}, got {crop_type!r}')
        self.crop = _CROPS[crop_type](scale, crop_ratio_range=crop_ratio_range, aspect_ratio_range=aspect_ratio_range)
        self.flip_prob = float(flip_prob)
        self.backend_args = backend_args.copy() if backend_args else None

    def transform(self, results: dict) -> dict:
        path = results.get('img_path')
        try:
            data = results.pop('img_bytes', None)  # from a shard or a Hugging Face dataset: no file to read
            if data is None:
                data = fileio.get(path, backend_args=self.backend_args)
            H, W, _, jpeg = image_header(data)
        except Exception as e:
            raise OSError(f'{type(self).__name__}: cannot read {path}: {e}') from e
        if not jpeg:
            raise ValueError(f'{type(self).__name__}: {path} is not a JPEG, the device decoder reads JPEG only')
        top, left, ch, cw = self.crop.crop_box(H, W)
        flip = bool(np.random.rand() < self.flip_prob)
        sample = DataSample()
        if 'gt_label' in results:
            sample.set_gt_label(results['gt_label'])
        sample.set_metainfo(
            dict(
                img_path=path,
                ori_shape=(H, W),
                img_shape=self.crop.scale,
                crop_bbox=(left, top, left + cw, top + ch),
                flip=flip,
                sample_idx=results.get('sample_idx', -1),
            )
        )
        return dict(inputs=torch.frombuffer(bytearray(data), dtype=torch.uint8), data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(crop={self.crop!r}, flip_prob={self.flip_prob})'
