"""The per-image annotation container that flows from ``PackInputs`` to the model."""

from collections.abc import Callable, Sequence

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


def stack_sample_fields(samples: Sequence[DataSample], convert: Callable | None = None) -> None:
    """Re-home every tensor field of a batch's samples (``gt_label``, ``mask``, ...) in place, one field at a time.

    A field all samples hold with one shape and dtype is stacked to (B, ...), passed through ``convert`` once, and each
    sample's field becomes row ``i`` of the result (one storage, one copy); otherwise each sample's tensor goes
    through ``convert`` alone. Non-tensor fields and metainfo are left as they are.

    Args:
        samples: The batch's ``DataSample``s.
        convert: Tensor -> tensor (e.g. a move to the device); None keeps the tensors where they are.
    """
    if not samples:
        return
    convert = convert or (lambda t: t)
    for key in samples[0].keys():
        values = [s.get(key) for s in samples]
        if not all(isinstance(v, torch.Tensor) for v in values):
            continue
        if all(v.shape == values[0].shape and v.dtype == values[0].dtype for v in values):
            rows = convert(torch.stack(values))  # B x (...) -> (B, ...)
        else:
            rows = [convert(v) for v in values]
        for s, row in zip(samples, rows, strict=True):
            s.set_field(row, key)
