"""Unreadable images: an error naming the file and index, or (skip_bad_images=True) replaced, counted and logged;
tools/misc/verify_dataset.py lists them. Real broken files, a real DataLoader with workers, a real training run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.dataset import default_collate

from mimlab.datasets import CustomDataset, write_builtin_dataset
from mimlab.datasets.verify import check_image

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=16),
    dict(type='PackInputs'),
]
KINDS = ('truncated', 'zero_byte', 'not_an_image', 'missing')


def _break(path: Path, kind: str) -> None:
    data = path.read_bytes()
    if kind == 'truncated':
        path.write_bytes(data[: len(data) // 2])
    elif kind == 'zero_byte':
        path.write_bytes(b'')
    elif kind == 'not_an_image':
        path.write_text('not an image, just text')
    # 'missing' is deleted after the dataset has listed it (e.g. removed while the job runs)


@pytest.fixture
def tree(tmp_path):
    """16 training JPEGs; every 4th (indices 1, 5, 9, 13 of the sorted list) broken one of the four ways."""
    write_builtin_dataset(str(tmp_path), num_train=16, num_val=0, img_size=24, fmt='jpg')
    files = sorted((tmp_path / 'train').rglob('*.jpg'))
    assert len(files) == 16
    broken = {}
    for kind, i in zip(KINDS, (1, 5, 9, 13), strict=True):
        _break(files[i], kind)
        broken[i] = (kind, files[i])
    return tmp_path, broken


def _dataset(root, **kw):
    return CustomDataset(data_root=str(root), data_prefix='train', pipeline=PIPELINE, **kw)


def _remove_missing(broken):
    for kind, path in broken.values():
        if kind == 'missing':
            path.unlink()


@pytest.mark.parametrize('kind', KINDS)
def test_each_kind_of_bad_file_stops_with_its_index_and_path(tree, kind):
    root, broken = tree
    ds = _dataset(root)
    _remove_missing(broken)
    idx = next(i for i, (k, _) in broken.items() if k == kind)
    path = broken[idx][1]
    assert ds.get_data_info(idx)['img_path'] == str(path)
    with pytest.raises(RuntimeError, match=rf'CustomDataset\[{idx}\] {path}'):
        ds[idx]
    ds[idx - 1]  # its neighbours are fine


def test_skip_bad_images_replaces_counts_across_workers(tree):
    root, broken = tree
    ds = _dataset(root, skip_bad_images=True)
    _remove_missing(broken)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=default_collate)
    seen = 0
    for epoch in range(2):
        for batch in loader:
            assert batch['inputs'].shape == (4, 3, 16, 16)
            seen += 4
        assert ds.num_skipped_images == 4 * (epoch + 1)  # counted in the workers, read in the main process
    assert seen == 32
    # the replacement is the next sample
    sample = ds[1]
    assert sample['data_samples'].img_path == ds.get_data_info(2)['img_path']
    assert ds.num_skipped_images == 9


def test_check_image_reasons(tree):
    root, broken = tree
    _remove_missing(broken)
    reasons = {kind: check_image(str(path)) for kind, path in broken.values()}
    assert reasons['zero_byte'] == 'empty file'
    assert 'truncated' in reasons['truncated'].lower()
    assert 'cannot identify' in reasons['not_an_image']
    assert 'No such file' in reasons['missing']
    good = sorted((root / 'train').rglob('*.jpg'))[0]
    assert check_image(str(good)) is None


def _file_config(tmp_path, root, skip):
    cfg = tmp_path / f'cfg_skip{int(skip)}.py'
    cfg.write_text(
        f"_base_ = ['{ROOT}/configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py']\n"
        'train_dataloader = dict(batch_size=4, num_workers=2, dataset=dict(_delete_=True, type="CustomDataset", '
        f'data_root="{root}", data_prefix="train", skip_bad_images={skip}, pipeline=['
        'dict(type="LoadImageFromFile"), dict(type="RandomResizedCrop", scale=32), dict(type="PackInputs")]))\n'
        'train_cfg = dict(max_epochs=2)\n'
        'default_hooks = dict(logger=dict(interval=1))\n'
    )
    return cfg


def _train(cfg, work_dir):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    return subprocess.run(
        [sys.executable, 'tools/train.py', str(cfg), '--work-dir', str(work_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_training_run_stops_or_skips_and_logs_the_count(tree, tmp_path):
    root, broken = tree
    _remove_missing(broken)
    proc = _train(_file_config(tmp_path, root, skip=False), tmp_path / 'stop')
    assert proc.returncode != 0
    assert any(f'] {path}' in proc.stderr + proc.stdout for _, path in broken.values()), proc.stderr[-2000:]

    proc = _train(_file_config(tmp_path, root, skip=True), tmp_path / 'skip')
    assert proc.returncode == 0, proc.stderr[-3000:]
    scalars = next((tmp_path / 'skip').rglob('scalars.json')).read_text().splitlines()
    counts = [json.loads(line)['skipped_images'] for line in scalars if 'skipped_images' in line]
    # the deleted file is not listed by the run's folder scan: 3 unreadable of 15, two passes
    assert counts and counts[-1] == 6
    out = proc.stdout + proc.stderr
    assert 'epoch 1: 3 unreadable images skipped in this epoch, 3 in this run' in out, out[-3000:]
    assert 'epoch 2: 3 unreadable images skipped in this epoch, 6 in this run' in out


def test_verify_dataset_lists_every_bad_file(tree, tmp_path):
    root, broken = tree
    _remove_missing(broken)
    cfg = _file_config(tmp_path, root, skip=False)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, 'tools/misc/verify_dataset.py', str(cfg), '--workers', '2'],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    listed = [line.split('\t') for line in proc.stdout.splitlines() if line.count('\t') == 2]
    # the folder scan cannot list the deleted file: the 3 others, at the same indices in the 15-file dataset
    expected = [(i, str(path)) for i, (kind, path) in sorted(broken.items()) if kind != 'missing']
    assert [(int(i), p) for i, p, _ in listed] == expected  # the deleted file was the last broken one (13)
    assert '3 of 15 images unreadable' in proc.stdout

    for _, path in broken.values():  # repaired: exit 0
        path.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, 'tools/misc/verify_dataset.py', str(cfg)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0 and 'all 12 images readable' in proc.stdout, proc.stdout[-1000:] + proc.stderr[-1000:]
