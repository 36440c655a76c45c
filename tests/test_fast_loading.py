"""The fused JPEG loader + random resized crop, and the GPU input path run on the CPU.

Distribution: the fused transform draws exactly the boxes of the unfused crops (same numpy draws), and its MAE crop's
area / log-aspect statistics agree with mmpretrain 1.2.0's RandomResizedCrop(scale=(0.2, 1)) over 2000 draws.
Pixels: the fused output equals the unfused ``LoadImageFromFile -> MAERandomResizedCrop(pillow)`` up to the resize
kernel (torch's uint8 antialiased bicubic vs Pillow's) and, for crops >= 2x the output, the DCT-scaled decode.
"""

import math

import cv2
import numpy as np
import pytest
import torch

from mimlab.registry import MODELS, TRANSFORMS
from mimlab.utils.benchmark import make_jpegs

OUT = 64  # output side: small images keep the test fast; the ratios to the image size are realistic


@pytest.fixture(scope='module')
def jpegs(tmp_path_factory):
    root = tmp_path_factory.mktemp('jpegs')
    small = make_jpegs(str(root / 'small'), 6, size=(250, 188), quality=90)  # crops mostly < 2x the output
    large = make_jpegs(str(root / 'large'), 6, size=(600, 450), quality=90)  # many crops decode at 1/2 or 1/4
    tiny = make_jpegs(str(root / 'tiny'), 4, size=(100, 75), quality=90)  # crops below the output: upsampling
    return small, large, tiny


def _unfused(crop_type='MAERandomResizedCrop'):
    load = TRANSFORMS.build(dict(type='LoadImageFromFile'))
    crop = TRANSFORMS.build(dict(type=crop_type, scale=OUT, crop_ratio_range=(0.2, 1.0), interpolation='bicubic'))
    return lambda path: crop(load(dict(img_path=path)))


def _fused(**kw):
    t = TRANSFORMS.build(
        dict(type='LoadImageRandomResizedCrop', scale=OUT, crop_ratio_range=(0.2, 1.0), interpolation='bicubic', **kw)
    )
    return lambda path: t(dict(img_path=path))


@pytest.mark.parametrize('crop_type', ['MAERandomResizedCrop', 'RandomResizedCrop'])
def test_fused_draws_the_unfused_boxes(jpegs, crop_type):
    paths = jpegs[0] + jpegs[1] + jpegs[2]
    np.random.seed(7)
    ref = [_unfused(crop_type)(p)['crop_bbox'] for p in paths * 3]
    np.random.seed(7)
    ours = [_fused(crop_type=crop_type)(p)['crop_bbox'] for p in paths * 3]
    assert ours == ref


@pytest.mark.parametrize('crop_type', ['RandomResizedCrop', 'MAERandomResizedCrop'])
def test_crop_statistics_vs_mmpretrain(crop_type):
    """'RandomResizedCrop' reproduces mmpretrain's statistics; the official MAE crop (one draw, clamped; what the
    MAE configs use) keeps larger crops on average, a property of that crop, not of the fused loader."""
    from mmpretrain.datasets.transforms import RandomResizedCrop as RefRRC

    H, W, n = 375, 500, 2000
    ours = TRANSFORMS.build(
        dict(type='LoadImageRandomResizedCrop', scale=224, crop_ratio_range=(0.2, 1.0), crop_type=crop_type)
    ).crop
    ref = RefRRC(scale=224, crop_ratio_range=(0.2, 1.0), backend='pillow', interpolation='bicubic')
    img = np.empty((H, W, 3), np.uint8)
    np.random.seed(0)
    a = np.array([ours.crop_box(H, W)[2:] for _ in range(n)], dtype=float)  # (n, 2): ch, cw
    np.random.seed(1)
    b = np.array([ref.rand_crop_params(img)[2:] for _ in range(n)], dtype=float)
    area_a, area_b = a.prod(1) / (H * W), b.prod(1) / (H * W)
    logr_a, logr_b = np.log(a[:, 1] / a[:, 0]), np.log(b[:, 1] / b[:, 0])
    # area std ~0.23 and log-aspect std ~0.15: standard errors of 2000-draw means ~0.005 and ~0.004
    assert abs(logr_a.mean() - logr_b.mean()) < 0.02, (logr_a.mean(), logr_b.mean())
    assert abs(logr_a.std() - logr_b.std()) < 0.02, (logr_a.std(), logr_b.std())
    if crop_type == 'RandomResizedCrop':
        assert abs(area_a.mean() - area_b.mean()) < 0.025, (area_a.mean(), area_b.mean())
        assert abs(area_a.std() - area_b.std()) < 0.02, (area_a.std(), area_b.std())
    else:  # mean area fraction ~0.57 vs mmpretrain's ~0.50 (its retry loop rejects large, off-aspect draws)
        assert 0.55 < area_a.mean() < 0.59 and 0.48 < area_b.mean() < 0.52, (area_a.mean(), area_b.mean())


def test_flip_rate_is_one_half(jpegs):
    flip = TRANSFORMS.build(dict(type='RandomFlip', prob=0.5))
    enc = TRANSFORMS.build(dict(type='PackEncodedWithCrop', scale=OUT))
    np.random.seed(1)
    img = np.zeros((4, 4, 3), np.uint8)
    rate = np.mean([flip(dict(img=img))['flip'] for _ in range(2000)])
    rate_enc = np.mean([enc(dict(img_path=jpegs[0][0]))['data_samples'].flip for _ in range(2000)])
    assert abs(rate - 0.5) < 0.035 and abs(rate_enc - 0.5) < 0.035  # 3 sigma of a 2000-draw binomial


def test_fused_pixels_match_unfused(jpegs):
    """Full-scale decode: only the resize kernel differs. Reduced decode: the DCT scaling differs too."""
    diffs = {1: [], 2: [], 4: [], 8: []}
    for paths in jpegs:
        for seed, path in enumerate(paths * 4):
            np.random.seed(seed)
            ref = _unfused()(path)
            np.random.seed(seed)
            ours = _fused()(path)
            assert ours['crop_bbox'] == ref['crop_bbox'] and ours['img'].shape == (OUT, OUT, 3)
            assert ours['img'].dtype == np.uint8 and ours['ori_shape'] == ref['ori_shape']
            diffs[ours['decode_scale']].append(np.abs(ours['img'].astype(int) - ref['img']).mean())
            if seed < len(paths):  # with the reduced decode switched off, only the resize kernel differs
                np.random.seed(seed)
                full = _fused(reduced_decode=False)(path)
                assert full['decode_scale'] == 1
                assert np.abs(full['img'].astype(int) - ref['img']).mean() < 0.5
    assert len(diffs[1]) > 5 and len(diffs[2]) + len(diffs[4]) > 5, {k: len(v) for k, v in diffs.items()}
    # grey levels (0-255): torch's uint8 antialiased bicubic ~ Pillow's (upsampling differs a little more)
    assert np.mean(diffs[1]) < 0.1 and max(diffs[1]) < 0.5, diffs[1]
    reduced = diffs[2] + diffs[4] + diffs[8]
    assert np.mean(reduced) < 2.0 and max(reduced) < 4.0, reduced


def test_fused_errors_name_the_file(tmp_path):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'not a jpeg')
    with pytest.raises(OSError, match='broken.jpg'):
        _fused()(str(bad))
    with pytest.raises(OSError, match='missing.jpg'):
        _fused()(str(tmp_path / 'missing.jpg'))


def test_fused_reads_grey_and_png(tmp_path):
    grey = np.random.RandomState(0).randint(0, 255, (90, 120), np.uint8)
    cv2.imwrite(str(tmp_path / 'g.jpg'), grey)
    cv2.imwrite(str(tmp_path / 'c.png'), np.dstack([grey] * 3))
    for name in ('g.jpg', 'c.png'):
        out = _fused()(str(tmp_path / name))
        assert out['img'].shape == (OUT, OUT, 3) and out['ori_shape'] == (90, 120)


def test_gpu_path_on_cpu_matches_cpu_path(jpegs):
    """Same crop box and flip -> the device path's normalised batch equals the CPU path's, within interpolation."""
    from mmengine.dataset import pseudo_collate

    paths = jpegs[0][:3] + jpegs[1][:3]
    enc = TRANSFORMS.build(dict(type='PackEncodedWithCrop', scale=OUT, flip_prob=0.5))
    cpu = TRANSFORMS.build(dict(type='LoadImageRandomResizedCrop', scale=OUT, reduced_decode=False))
    pack = TRANSFORMS.build(dict(type='PackInputs'))
    encoded, cpu_imgs = [], []
    for i, path in enumerate(paths):
        np.random.seed(i)
        sample = enc(dict(img_path=path, sample_idx=i))
        np.random.seed(i)
        results = cpu(dict(img_path=path))
        assert results['crop_bbox'] == sample['data_samples'].crop_bbox
        if sample['data_samples'].flip:
            results['img'] = results['img'][:, ::-1]
        encoded.append(sample)
        cpu_imgs.append(pack(results)['inputs'])
    batch = pseudo_collate(encoded)
    gpu_pre = MODELS.build(dict(type='GPUDecodeDataPreprocessor'))
    cpu_pre = MODELS.build(dict(type='MIMDataPreprocessor', to_rgb=True))
    ours = gpu_pre(batch)['inputs']
    ref = cpu_pre(dict(inputs=torch.stack(cpu_imgs)))['inputs']
    assert ours.shape == ref.shape == (len(paths), 3, OUT, OUT)
    err = ((ours - ref) * cpu_pre.std).abs()  # back to grey levels
    assert err.mean() < 0.3 and err.max() <= 2, (err.mean(), err.max())  # measured: 0.11 and 1
    assert len(gpu_pre(batch)['data_samples']) == len(paths)


def test_gpu_preprocessor_rejects_stacked_batches():
    pre = MODELS.build(dict(type='GPUDecodeDataPreprocessor'))
    with pytest.raises(TypeError, match='pseudo_collate'):
        pre(dict(inputs=torch.zeros(2, 3, 8, 8, dtype=torch.uint8), data_samples=None))


def test_decode_scale_keeps_the_crop_at_least_the_output():
    t = TRANSFORMS.build(dict(type='LoadImageRandomResizedCrop', scale=224))
    assert t.decode_scale(447, 900) == 1 and t.decode_scale(448, 448) == 2
    assert t.decode_scale(1000, 1000) == 4 and t.decode_scale(1792, 2000) == 8
    for ch in range(100, 2000, 37):
        s = t.decode_scale(ch, ch)
        assert math.floor(ch / s) >= 224 or s == 1
