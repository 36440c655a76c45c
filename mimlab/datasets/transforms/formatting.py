"""Packing a transformed sample into the ``dict(inputs, data_samples)`` that ``default_collate`` batches."""

from collections.abc import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mimlab.registry import TRANSFORMS
from mimlab.structures import DataSample


@TRANSFORMS.register_module()
class PackInputs(BaseTransform):
    """HWC uint8 image -> ``inputs`` CHW uint8 tensor; labels, mask and meta -> a :class:`DataSample`.

    Images stay uint8 (normalisation runs on the device in the data preprocessor).

    Args:
        input_key: Key of the image in the results.
        algorithm_keys: Extra result keys stored as data fields of the sample.
        meta_keys: Result keys stored as meta information.
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
        if img.ndim == 2:
            img = img[..., None]
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))  # (H, W, C) -> (C, H, W)

    def transform(self, results: dict) -> dict:
        if self.input_key not in results:
            raise KeyError(f'PackInputs: no {self.input_key!r} in the results (keys: {sorted(results)})')
        packed = dict(inputs=self.to_tensor(results[self.input_key]))
        sample = DataSample()
        if 'gt_label' in results:
            sample.set_gt_label(results['gt_label'])
        if 'mask' in results:
            sample.set_mask(results['mask'])
        for key in self.algorithm_keys:
            if key in results:
                sample.set_field(results[key], key)
        sample.set_metainfo({k: results[k] for k in self.meta_keys if k in results})
        packed['data_samples'] = sample
        return packed

    def __repr__(self) -> str:
        return f'{type(self).__name__}(input_key={self.input_key!r}, meta_keys={self.meta_keys})'
