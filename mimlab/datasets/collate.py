"""Batching packed samples so that a batch leaves a data-loader worker in few pieces.

A worker hands its batch to the main process by pickling it, and torch moves every tensor's storage into its own
shared-memory segment for that (create, size and map it in the worker; receive the descriptor and map it again in the
main process). mmengine's ``default_collate`` stacks the images into one tensor but keeps each ``DataSample`` with
its own little ``gt_label`` (and SimMIM ``mask``) tensor, so a batch of B labelled images crosses as B + 1 segments.
Measured here, batches of 64 through 2 workers: 28-34 ms per batch and 17-18 ms of the main process's CPU time,
against 6-8 ms and 3-4 ms when the labels share one storage; per image that is ~0.3 ms of the main process, which at
batch 512 per GPU is more host time than a whole MAE ViT-B step on an H200.
"""

from collections.abc import Sequence
from typing import Any

from mmengine.dataset import default_collate as _mmengine_default_collate

from mimlab.registry import FUNCTIONS
from mimlab.structures import DataSample, stack_sample_fields


@FUNCTIONS.register_module(name='default_collate')
def default_collate(data_batch: Sequence) -> Any:
    """mmengine's ``default_collate``, then the data samples' tensors share one storage per field.

    Same result as ``mmengine.dataset.default_collate`` (``inputs`` stacked to (B, C, H, W), ``data_samples`` a
    list of B ``DataSample`` with equal values), except that each per-sample tensor field (``gt_label``, ``mask``) is
    a view of one (B, ...) tensor (:func:`~mimlab.structures.stack_sample_fields`), so the batch crosses from a
    worker in one shared-memory segment per field instead of one per sample. Configs select it as
    ``collate_fn=dict(type='mimlab.default_collate')``.

    Args:
        data_batch: The samples packed by ``PackInputs`` (or any structure mmengine's collate takes).

    Returns:
        The collated batch.
    """
    batch = _mmengine_default_collate(data_batch)
    samples = batch.get('data_samples') if isinstance(batch, dict) else None
    if isinstance(samples, list) and samples and all(isinstance(s, DataSample) for s in samples):
        stack_sample_fields(samples)
    return batch
