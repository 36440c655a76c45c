"""Datasets, the built-in dataset and transforms, on real image files the tests write."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate

from mimlab.datasets import BuiltinDataset, CustomDataset, ImageNet, write_builtin_dataset
from mimlab.datasets.builtin import class_names
from mimlab.datasets.transforms import MAERandomResizedCrop, PackInputs, RandomResizedCrop
from mimlab.registry import DATASETS, TRANSFORMS


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp('imagenet')
    write_builtin_dataset(str(root), num_train=30, num_val=10, img_size=40, fmt='jpg')
    return root


# ------------------------------------------------------------------------------------------------ datasets
def _infos(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


def test_imagenet_reads_ann_file_and_folders(tree):
    ann = ImageNet(data_root=str(tree), split='train', pipeline=[dict(type='LoadImageFromFile')])
    assert ann.ann_file.endswith('meta/train.txt') and len(ann) == 30
    (tree / 'meta' / 'train.txt').rename(tree / 'meta' / 'train.bak')
    try:
        folders = ImageNet(data_root=str(tree), split='train')
    finally:
        (tree / 'meta' / 'train.bak').rename(tree / 'meta' / 'train.txt')
    assert folders.metainfo['classes'] == tuple(f'{i:02d}_{n}' for i, n in enumerate(class_names(10)))
    by_path = {d['img_path']: d['gt_label'] for d in _infos(folders)}
    assert len(by_path) == 30
    assert {d['img_path']: d['gt_label'] for d in _infos(ann)} == by_path
    sample = ann[0]
    assert sample['img_path'].endswith('.jpg') and sample['img'].shape == (40, 40, 3)


def test_unlabelled_test_split_and_custom_dataset(tree):
    ds = CustomDataset(data_root=str(tree), data_prefix='val', with_label=False)
    assert len(ds) == 10 and 'gt_label' not in ds.get_data_info(0)
    ds = DATASETS.build(dict(type='CustomDataset', data_root=str(tree), data_prefix='val'))
    assert sorted({d['gt_label'] for d in _infos(ds)}) == list(range(10))


def test_missing_root_names_the_path(tmp_path):
    missing = tmp_path / 'no_such_imagenet'
    with pytest.raises(FileNotFoundError, match='no_such_imagenet'):
        ImageNet(data_root=str(missing), split='train')


def test_bad_annotation_line_names_file_and_line(tree, tmp_path):
    (tmp_path / 'train').symlink_to(tree / 'train')
    (tmp_path / 'meta').mkdir()
    (tmp_path / 'meta' / 'train.txt').write_text('00_disc_solid/a.jpg 0\nbroken-line-without-label\n')
    with pytest.raises(ValueError, match=r'train.txt:2'):
        ImageNet(data_root=str(tmp_path), split='train')


def test_unreadable_image_error_names_file_and_index(tmp_path):
    (tmp_path / 'cls').mkdir()
    (tmp_path / 'cls' / 'broken.jpg').write_bytes(b'this is not a jpeg')
    ds = CustomDataset(data_root=str(tmp_path), pipeline=[dict(type='LoadImageFromFile')])
    with pytest.raises(RuntimeError, match=r'CustomDataset\[0\] .*broken\.jpg'):
        ds[0]


# --------------------------------------------------------------------------------------------- built-in data
def test_builtin_is_deterministic_labelled_and_split_dependent():
    a = BuiltinDataset(split='train', num_samples=40, img_size=32, seed=3)
    b = BuiltinDataset(split='train', num_samples=40, img_size=32, seed=3)
    v = BuiltinDataset(split='val', num_samples=40, img_size=32, seed=3)
    img, label = a.render(7)
    assert img.dtype == np.uint8 and img.shape == (32, 32, 3) and label == 7
    assert np.array_equal(img, b.render(7)[0]) and not np.array_equal(img, v.render(7)[0])
    assert sorted({a[i]['gt_label'] for i in range(40)}) == list(range(10))
    assert len(BuiltinDataset(num_samples=5, num_classes=20).metainfo['classes']) == 20


def test_builtin_classes_not_separable_by_mean_colour_but_by_structure():
    """Mean colour is a nuisance (near chance); a simple pixel nearest-centroid on edges does better."""
    ds = BuiltinDataset(split='train', num_samples=600, img_size=32, seed=0)
    val = BuiltinDataset(split='val', num_samples=300, img_size=32, seed=0)

    def feats(d, kind):
        out = []
        for i in range(len(d)):
            img = d.render(i)[0].astype(np.float32)
            if kind == 'colour':
                out.append(img.mean((0, 1)))
            else:  # gradient-magnitude histogram + radial profile: colour-invariant structure
                g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
                gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
                mag = np.hypot(gx, gy)
                mag /= mag.max() + 1e-6
                out.append(np.concatenate([np.histogram(mag, 16, (0, 1))[0], (mag > 0.3).mean(0), (mag > 0.3).mean(1)]))
        return np.stack(out)

    def ncc(kind):
        xtr, xva = feats(ds, kind), feats(val, kind)
        ytr, yva = np.arange(len(ds)) % 10, np.arange(len(val)) % 10
        mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
        xtr, xva = (xtr - mu) / sd, (xva - mu) / sd
        cents = np.stack([xtr[ytr == c].mean(0) for c in range(10)])
        pred = ((xva[:, None] - cents[None]) ** 2).sum(-1).argmin(1)
        return (pred == yva).mean()

    colour, structure = ncc('colour'), ncc('structure')
    assert colour < 0.2  # chance is 0.1
    assert structure > colour + 0.1


def test_write_builtin_dataset_tool(tmp_path):
    out = tmp_path / 'builtin'
    subprocess.run(
        [
            sys.executable,
            'tools/misc/make_builtin_dataset.py',
            str(out),
            '--num-train',
            '12',
            '--num-val',
            '4',
            '--img-size',
            '24',
            '--format',
            'png',
        ],
        check=True,
    )
    lines = (out / 'meta' / 'train.txt').read_text().splitlines()
    assert len(lines) == 12 and lines[0] == '00_disc_solid/disc_solid_000000.png 0'
    img = cv2.imread(str(out / 'train' / '00_disc_solid' / 'disc_solid_000000.png'))
    assert np.array_equal(img, BuiltinDataset(num_samples=12, img_size=24).render(0)[0])  # lossless PNG


# ------------------------------------------------------------------------------------------------- transforms
def test_mae_crop_is_one_draw_with_expected_statistics():
    t = MAERandomResizedCrop(scale=32, crop_ratio_range=(0.2, 1.0))
    np.random.seed(0)
    areas, ratios = [], []
    for _ in range(2000):
        top, left, ch, cw = t.crop_box(400, 400)
        assert 0 <= top <= 400 - ch and 0 <= left <= 400 - cw
        areas.append(ch * cw / 400**2)
        ratios.append(cw / ch)
    areas, log_r = np.array(areas), np.log(ratios)
    assert areas.min() > 0.19 and areas.max() <= 1.0
    # area uniform in [0.2, 1] before clamping: mean close to 0.6 (clamping at the top lowers it a little)
    assert 0.55 < areas.mean() < 0.61
    assert abs(log_r.mean()) < 0.02 and log_r.min() > np.log(3 / 4) - 0.02 and log_r.max() < np.log(4 / 3) + 0.02
    out = t(dict(img=np.zeros((50, 70, 3), np.uint8)))
    assert out['img'].shape == (32, 32, 3)


def test_random_resized_crop_fallback_is_centre_crop():
    t = RandomResizedCrop(scale=16, crop_ratio_range=(2.0, 3.0))  # no draw can fit: fallback
    top, left, ch, cw = t.crop_box(100, 400)  # very wide image: ratio clamped to 4/3
    assert (ch, cw) == (100, 133) and (top, left) == (0, (400 - 133) // 2)


def test_pack_inputs_and_collate():
    pack = TRANSFORMS.build(dict(type='PackInputs'))
    assert isinstance(pack, PackInputs)
    img = np.random.randint(0, 255, (8, 8, 3), np.uint8)
    out = pack(dict(img=img, gt_label=3, mask=np.ones((2, 2)), img_path='x.jpg', sample_idx=5))
    assert out['inputs'].dtype == torch.uint8 and out['inputs'].shape == (3, 8, 8)
    assert torch.equal(out['inputs'], torch.from_numpy(img).permute(2, 0, 1))
    ds = out['data_samples']
    assert ds.gt_label.tolist() == [3] and ds.mask.shape == (2, 2) and ds.img_path == 'x.jpg'
    batch = default_collate([out, out])
    assert batch['inputs'].shape == (2, 3, 8, 8) and len(batch['data_samples']) == 2


def test_mmcv_loading_and_flip_resolve_in_scope(tmp_path):
    load = TRANSFORMS.build(dict(type='LoadImageFromFile'))
    flip = TRANSFORMS.build(dict(type='RandomFlip', prob=1.0))
    path = tmp_path / 'a.png'
    img = np.random.randint(0, 255, (6, 9, 3), np.uint8)
    cv2.imwrite(str(path), img)
    res = flip(load(dict(img_path=str(path))))
    assert np.array_equal(res['img'], img[:, ::-1])
    with pytest.raises(Exception, match='missing.png'):
        load(dict(img_path=str(tmp_path / 'missing.png')))


def test_timm_randaugment_runs_every_op_on_bgr_arrays():
    from mimlab.datasets.transforms import ResizeEdge, TimmRandAugment

    t = TimmRandAugment('rand-m9-mstd0.5-inc1', img_size=32)
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    np.random.seed(0)
    import random

    random.seed(0)
    for _ in range(2000):  # includes magnitude draws at the cap, where posterize would keep 0 bits
        out = t(dict(img=img))['img']
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    resized = ResizeEdge(16, edge='short')(dict(img=np.zeros((40, 60, 3), np.uint8)))
    assert resized['img'].shape == (16, 24, 3)
