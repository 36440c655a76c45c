"""Packing a transformed sample into the ``dict(inputs, data_samples)`` that mmengine's ``default_collate`` batches.

Legend: ``H x W`` image, ``C`` channels; a batch of B packed samples collates to ``inputs`` (B, C, H, W) uint8 and a
list of B ``DataSample``.
"""

from collections.abc import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mimlab.registry import TRANSFORMS
from mimlab.structures import DataSample

try:
    from mimlab._jpeg import planar as _planar  # HWC -> CHW copy (mimlab/csrc/jpeg_region.c), optional
except ImportError:  # the C extension was not built: numpy's copy
    _planar = None


@TRANSFORMS.register_module()
class PackInputs(BaseTransform):
    """Image -> ``inputs`` (C, H, W) uint8 tensor; labels, mask and meta information -> a :class:`DataSample`.

    Images stay uint8 and in their channel order (BGR from ``LoadImageFromFile``): the data preprocessor converts,
    normalises and casts them on the device, which moves 4x fewer bytes from the workers than float32.

    Args:
        input_key: Key of the image in the results: (H, W, C) or (H, W) uint8 array.
        algorithm_keys: Extra result keys stored as data fields of the sample (skipped when absent).
        meta_keys: Result keys stored as meta information (skipped when absent).
    """

    def __init__(
        self,
        input_key: str = 'img',
        algorithm_keys: Sequence[str] = (),
        meta_keys: Sequence[str] = ('sample_idx', 'img_path', 'ori_shape', 'img_shape', 'flip', 'flip_direction'),
    ):
        super().__init__()
        self.input_key = input_key
        self.algorithm_keys = tuple(algorithm_keys)
        self.meta_keys = tuple(meta_keys)

    @staticmethod
    def to_tensor(img: np.ndarray) -> torch.Tensor:
        """(H, W, C) or (H, W) array -> contiguous (C, H, W) tensor of the same dtype (a copy).

        A 3-channel uint8 image, contiguous or a left-right flipped view of a contiguous one (what
        ``LoadImageRandomResizedCrop`` hands over), is copied by ``mimlab._jpeg.planar`` (SIMD byte shuffles, ~4x
        numpy's transpose copy) when the extension is built."""
        if img.ndim == 2:
            img = img[..., None]  # (H, W) -> (H, W, 1)
        if _planar is not None and img.dtype == np.uint8 and img.shape[2] == 3:
            flip = img.strides[1] < 0
            src = img[:, ::-1] if flip else img
            if src.flags.c_contiguous:
                H, W = img.shape[:2]
                out = torch.empty((3, H, W), dtype=torch.uint8)
                _planar(src, out.numpy(), H, W, flip)
                return out
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))  # (H, W, C) -> (C, H, W)

    def transform(self, results: dict) -> dict:
        """Pack one sample.

        Args:
            results: With ``input_key``; optionally ``gt_label`` (int), ``mask`` (array), algorithm and meta keys.

        Returns:
            ``dict(inputs=(C, H, W) tensor, data_samples=DataSample)``.
        """
        if self.input_key not in results:
            raise KeyError(f'PackInputs: no {self.input_key!r} in the results (keys: {sorted(results)})')
        sample = DataSample()
        if 'gt_label' in results:
            sample.set_gt_label(results['gt_label'])
        if 'mask' in results:
            sample.set_mask(results['mask'])
        for key in self.algorithm_keys:
            if key in results:
                sample.set_field(results[key], key)
        sample.set_metainfo({k: results[k] for k in self.meta_keys if k in results})
        return dict(inputs=self.to_tensor(results[self.input_key]), data_samples=sample)

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(input_key={self.input_key!r}, algorithm_keys={self.algorithm_keys}, '
            f'meta_keys={self.meta_keys})'
        )
