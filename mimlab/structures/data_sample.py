"""The per-image annotation container that flows from ``PackInputs`` to the model."""

import numpy as np
import torch
from mmengine.structures import BaseDataElement


def _to_tensor(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, (int, np.integer)):
        return torch.tensor([int(value)])
    if isinstance(value, (list, tuple)):
        return torch.tensor(value)
    raise TypeError(f'cannot convert {type(value).__name__} to a tensor')


class DataSample(BaseDataElement):
    """Labels and masks of one image. Field names follow mmpretrain's ``DataSample`` (``gt_label``, ``mask``)."""

    def set_gt_label(self, value) -> 'DataSample':
        self.set_field(_to_tensor(value).long().reshape(-1), 'gt_label', dtype=torch.Tensor)
        return self

    def set_gt_score(self, value) -> 'DataSample':
        self.set_field(_to_tensor(value).float(), 'gt_score', dtype=torch.Tensor)
        return self

    def set_pred_label(self, value) -> 'DataSample':
        self.set_field(_to_tensor(value).long().reshape(-1), 'pred_label', dtype=torch.Tensor)
        return self

    def set_pred_score(self, value) -> 'DataSample':
        self.set_field(_to_tensor(value).float(), 'pred_score', dtype=torch.Tensor)
        return self

    def set_mask(self, value) -> 'DataSample':
        self.set_field(_to_tensor(value), 'mask', dtype=torch.Tensor)
        return self
