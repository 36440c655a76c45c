"""Hugging Face datasets: a saved dataset read by index, Parquet files streamed across workers and resumed."""

from collections import Counter

import numpy as np
import pytest
import torch

from mimlab.datasets import BuiltinDataset, HFDataset, HFIterableDataset
from tests.test_shards_training import hf_dataset

NUM = 96


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    return hf_dataset(tmp_path_factory.mktemp('hf') / 'saved')


def test_saved_dataset_by_index_gives_the_images_labels_and_classes(saved):
    ds = HFDataset(str(saved), split='train', pipeline=[dict(type='PackInputs')])
    ref = BuiltinDataset(num_samples=NUM, img_size=48, lazy_init=True)
    assert len(ds) == NUM and ds.metainfo['classes'] == ref.metainfo['classes']
    for i in (0, 7, 95):
        img, label = ref.render(i)
        out = ds[i]
        assert np.array_equal(out['inputs'].numpy(), img.transpose(2, 0, 1))  # PNG: lossless, BGR as cv2 reads
        assert int(out['data_samples'].gt_label) == label
    fast = HFDataset(str(saved), pipeline=[dict(type='LoadImageRandomResizedCrop', scale=16), dict(type='PackInputs')])
    assert fast[3]['inputs'].shape == (3, 16, 16) and fast.reads_bytes
    with pytest.raises(KeyError, match="no image column 'img'"):
        HFDataset(str(saved), image_key='img')
    with pytest.raises(KeyError, match="splits \\['train'\\], not 'val'"):
        HFDataset(str(saved), split='val')


def _parquet(saved, out):
    import datasets

    ds = datasets.load_from_disk(str(saved))['train']
    out.mkdir()
    for i in range(3):  # 32 rows each
        ds.select(range(32 * i, 32 * (i + 1))).to_parquet(str(out / f'part-{i}.parquet'))
    return out


def _keys(dataset, batch_size=8, workers=2):
    dataset.set_batch_size(batch_size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=list)
    return [[s['data_samples'].img_path for s in b] for b in loader]


def test_parquet_files_streamed_once_per_epoch_and_resumed(saved, tmp_path):
    files = str(_parquet(saved, tmp_path / 'pq') / '*.parquet')
    ds = HFIterableDataset(data_files=files, shuffle_buffer=8, pipeline=[dict(type='PackInputs')])
    assert ds.shard_sizes() == [32, 32, 32]
    ds.set_epoch(1)
    batches = _keys(ds)
    keys = [k for b in batches for k in b]
    assert len(keys) == NUM and sorted(Counter(keys).values()) == [1] * NUM
    resumed = HFIterableDataset(data_files=files, shuffle_buffer=8, pipeline=[dict(type='PackInputs')])
    resumed.set_batch_size(8)
    resumed.set_epoch(1)
    resumed.skip(5 * 8)
    assert _keys(resumed) == batches[5:]


def test_verify_dataset_decodes_every_row_of_a_saved_dataset(saved, tmp_path):
    import importlib.util
    from pathlib import Path

    cfg = tmp_path / 'cfg.py'
    cfg.write_text(f"train_dataloader = dict(dataset=dict(type='HFDataset', path='{saved}'))\n")
    path = Path(__file__).resolve().parents[1] / 'tools/misc/verify_dataset.py'
    spec = importlib.util.spec_from_file_location('verify_dataset', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(cfg)]) == 0


def test_arrow_files_of_a_saved_dataset_stream_too(saved):
    files = sorted(str(p) for p in (saved / 'train').glob('*.arrow'))
    ds = HFIterableDataset(data_files=files, shuffle=False, pipeline=[dict(type='PackInputs')])
    samples = list(ds)
    assert ds.shard_sizes() == [NUM] and len(samples) == NUM
    img, label = BuiltinDataset(num_samples=NUM, img_size=48, lazy_init=True).render(5)
    assert np.array_equal(samples[5]['inputs'].numpy(), img.transpose(2, 0, 1))
    assert int(samples[5]['data_samples'].gt_label) == label
