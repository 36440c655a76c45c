"""mimlab's ``default_collate``: mmengine's batch, with each per-sample tensor field in one shared storage."""

import numpy as np
import torch
from mmengine.dataset import default_collate as mmengine_collate

from mimlab.datasets import default_collate
from mimlab.datasets.transforms import PackInputs
from mimlab.structures import DataSample


def _packed(i: int) -> dict:
    rng = np.random.default_rng(i)
    results = dict(
        img=rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
        gt_label=i % 5,
        mask=rng.integers(0, 2, (4, 4)),
        sample_idx=i,
        img_path=f'/data/{i}.JPEG',
    )
    return PackInputs().transform(results)


class _Packed(torch.utils.data.Dataset):
    def __len__(self):
        return 24

    def __getitem__(self, i):
        out = _packed(i)
        out['data_samples'].set_field(torch.arange(i % 3 + 1), 'ragged')  # differs in shape between samples
        return out


def _storages(samples, key):
    return {s.get(key).untyped_storage().data_ptr() for s in samples}


def test_same_batch_as_mmengine_with_one_storage_per_field():
    ours, ref = default_collate([_packed(i) for i in range(6)]), mmengine_collate([_packed(i) for i in range(6)])
    assert torch.equal(ours['inputs'], ref['inputs'])
    for a, b in zip(ours['data_samples'], ref['data_samples'], strict=True):
        assert isinstance(a, DataSample) and a.metainfo == b.metainfo and set(a.keys()) == set(b.keys())
        assert torch.equal(a.gt_label, b.gt_label) and torch.equal(a.mask, b.mask) and a.gt_label.shape == (1,)
    assert len(_storages(ours['data_samples'], 'gt_label')) == len(_storages(ours['data_samples'], 'mask')) == 1
    assert len(_storages(ref['data_samples'], 'gt_label')) == 6
    assert default_collate([torch.ones(2), torch.zeros(2)]).shape == (2, 2)  # anything else: mmengine's collate


def test_batches_from_workers_arrive_with_one_segment_per_field():
    from mmengine.registry import FUNCTIONS

    import mimlab.registry  # noqa: F401  (the 'mimlab' scope mmengine's Runner resolves configs' names in)

    assert FUNCTIONS.get('mimlab.default_collate') is default_collate
    loader = torch.utils.data.DataLoader(_Packed(), batch_size=8, num_workers=2, collate_fn=default_collate)
    seen = []
    for batch in loader:
        samples = batch['data_samples']
        assert len(_storages(samples, 'gt_label')) == 1 and len(_storages(samples, 'mask')) == 1
        assert len(_storages(samples, 'ragged')) == 8  # not stackable: left as they were
        seen += [(s.sample_idx, s.gt_label.item(), s.ragged.numel()) for s in samples]
    assert seen == [(i, i % 5, i % 3 + 1) for i in range(24)]
