"""Transforms: exact parity of the crops with mmpretrain and torchvision, crop statistics, packing, mmcv loading."""

import math
import random

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import LoadImageFromFile, RandomFlip
from mmengine import DefaultScope
from mmengine.dataset import default_collate
from PIL import Image

from mimlab.datasets.transforms import MAERandomResizedCrop, PackInputs, RandomResizedCrop, processing
from mimlab.registry import TRANSFORMS


def _image(h, w, seed=0, channels=3):
    shape = (h, w, channels) if channels else (h, w)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ----------------------------------------------------------------------------------------- RandomResizedCrop
@pytest.mark.parametrize('backend', ['pillow', 'cv2'])
@pytest.mark.parametrize(
    'kwargs',
    [
        dict(scale=16),
        dict(scale=(12, 20), interpolation='bicubic', crop_ratio_range=(0.2, 1.0)),  # (h, w) as mmpretrain
        dict(scale=16, crop_ratio_range=(0.9, 1.0), aspect_ratio_range=(0.5, 2.0), max_attempts=3),  # often falls back
        dict(scale=9, interpolation='nearest', crop_ratio_range=(1.5, 2.0)),  # always falls back
    ],
)
def test_random_resized_crop_equals_mmpretrain(kwargs, backend):
    """Same numpy seed -> the same crops and the same output pixels as mmpretrain 1.2.0's RandomResizedCrop."""
    from mmpretrain.datasets.transforms import RandomResizedCrop as Reference

    ours, ref = RandomResizedCrop(backend=backend, **kwargs), Reference(backend=backend, **kwargs)
    for i, (h, w) in enumerate([(40, 40), (30, 70), (64, 20), (33, 45)] * 3):
        img = _image(h, w, seed=i)
        np.random.seed(i)
        out = ours(dict(img=img.copy()))
        np.random.seed(i)
        expected = ref(dict(img=img.copy()))['img']
        assert out['img'].shape == expected.shape == (*ours.scale, 3)
        np.testing.assert_array_equal(out['img'], expected)
        assert out['img_shape'] == ours.scale


def test_random_resized_crop_fallback_equals_torchvision():
    """When no draw fits: a centre crop with the aspect ratio clamped, exactly torchvision's fallback box."""
    from torchvision.transforms import RandomResizedCrop as TV

    for h, w in [(100, 400), (400, 100), (100, 120), (7, 5)]:
        for crop_ratio_range, max_attempts in [((2.0, 3.0), 10), ((0.08, 1.0), 0)]:
            t = RandomResizedCrop(scale=8, crop_ratio_range=crop_ratio_range, max_attempts=max_attempts)
            expected = TV.get_params(torch.empty(3, h, w), [2.0, 3.0], [3 / 4, 4 / 3])  # (top, left, h, w)
            assert t.crop_box(h, w) == tuple(expected)
    assert RandomResizedCrop(scale=8, crop_ratio_range=(2, 3)).crop_box(100, 400) == (0, 133, 100, 133)


def test_pillow_resize_equals_torchvision_resized_crop():
    """The 'pillow' backend is torchvision's PIL path (antialiased): pixel-exact for the same box."""
    import torchvision.transforms.functional as F
    from torchvision.transforms import InterpolationMode

    img = _image(57, 83)
    for interpolation, mode in [('bilinear', InterpolationMode.BILINEAR), ('bicubic', InterpolationMode.BICUBIC)]:
        t = MAERandomResizedCrop(scale=(20, 24), interpolation=interpolation)
        np.random.seed(1)
        top, left, ch, cw = t.crop_box(57, 83)
        np.random.seed(1)
        out = t(dict(img=img))
        assert out['crop_bbox'] == (left, top, left + cw, top + ch)
        expected = F.resized_crop(Image.fromarray(img), top, left, ch, cw, [20, 24], mode)
        np.testing.assert_array_equal(out['img'], np.asarray(expected))


def test_crop_is_a_view_until_the_resize(monkeypatch):
    seen = []
    real = processing.resize
    monkeypatch.setattr(processing, 'resize', lambda crop, *a: seen.append(crop) or real(crop, *a))
    img = _image(50, 60)
    RandomResizedCrop(scale=10, backend='cv2')(dict(img=img))
    assert seen[0].base is not None and np.shares_memory(seen[0], img)


def test_grey_images_and_identity_size():
    out = RandomResizedCrop(scale=(6, 9), backend='cv2')(dict(img=_image(20, 30, channels=0)))
    assert out['img'].shape == (6, 9) and out['img'].dtype == np.uint8
    img = _image(12, 12)
    out = MAERandomResizedCrop(scale=12, crop_ratio_range=(1.0, 1.0), aspect_ratio_range=(1.0, 1.0))(dict(img=img))
    np.testing.assert_array_equal(out['img'], img)  # the whole image at its own size: no resampling


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match='interpolation'):
        RandomResizedCrop(scale=8, interpolation='area')
    with pytest.raises(ValueError, match='backend'):
        MAERandomResizedCrop(scale=8, backend='turbojpeg')
    with pytest.raises(ValueError, match='crop_ratio_range'):
        RandomResizedCrop(scale=8, crop_ratio_range=(1.0, 0.5))
    with pytest.raises(ValueError, match='scale'):
        RandomResizedCrop(scale=(8, 8, 8))


# ------------------------------------------------------------------------------------- MAERandomResizedCrop
def test_mae_crop_is_exactly_one_draw():
    """Four numpy draws per crop, whatever they give: area, log-aspect, top, left. No retry even if nothing fits."""
    t = MAERandomResizedCrop(scale=8, crop_ratio_range=(2.0, 3.0))  # every draw is too big: clamped, not redrawn
    np.random.seed(3)
    assert t.crop_box(30, 40) == (0, 0, 30, 40)
    after = np.random.random()
    np.random.seed(3)
    np.random.uniform(size=2)
    np.random.randint(0, 1, size=2)
    assert np.random.random() == after

    t = MAERandomResizedCrop(scale=8)
    np.random.seed(4)
    top, left, ch, cw = t.crop_box(300, 200)
    np.random.seed(4)
    area = 300 * 200 * np.random.uniform(0.2, 1.0)
    ratio = math.exp(np.random.uniform(math.log(3 / 4), math.log(4 / 3)))
    cw_exp, ch_exp = min(round(math.sqrt(area * ratio)), 200), min(round(math.sqrt(area / ratio)), 300)
    assert (ch, cw) == (ch_exp, cw_exp)
    assert (top, left) == (np.random.randint(0, 300 - ch + 1), np.random.randint(0, 200 - cw + 1))


def test_mae_crop_statistics():
    """Over many draws on a 224 px image (fixed numpy seed):

    - a drawn area below 3/4 can never be clamped (that needs area * 4/3 > 1), so the observed area fraction is
      uniform on [0.2, 0.75): 25% of draws in each quarter of [0.2, 0.6), and P(area < 0.5) = 0.3 / 0.8;
    - the aspect ratio of those unclamped crops is log-uniform on [3/4, 4/3];
    - clamped crops only ever shrink: every area fraction lies in [0.2, 1] up to rounding.
    """
    t = MAERandomResizedCrop(scale=224)
    np.random.seed(0)
    n, side = 4000, 224
    boxes = np.array([t.crop_box(side, side) for _ in range(n)])  # (n, 4): top, left, h, w
    top, left, ch, cw = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + ch <= side).all() and (left + cw <= side).all()
    frac = ch * cw / side**2
    assert frac.min() > 0.2 - 0.01 and frac.max() <= 1.0
    assert abs((frac < 0.5).mean() - 0.3 / 0.8) < 0.025
    quarters = np.histogram(frac, bins=[0.2, 0.3, 0.4, 0.5, 0.6])[0] / n
    np.testing.assert_allclose(quarters, 0.1 / 0.8, atol=0.02)
    log_r = np.log(cw / ch)[frac < 0.7]
    bins = np.histogram(log_r, bins=8, range=(math.log(3 / 4), math.log(4 / 3)))[0] / len(log_r)
    np.testing.assert_allclose(bins, 1 / 8, atol=0.03)
    assert abs(log_r.mean()) < 0.01
    assert (top[ch < side].std() > 0) and (left[cw < side].std() > 0)


def test_mae_crop_distribution_matches_mmpretrain():
    """mmpretrain's MAERandomResizedCrop draws with torch's RNG, so compare distributions: the clamping shows in the
    mean area fraction (below the unclamped 0.6) and the fraction of crops that span the full width or height."""
    from mmpretrain.datasets.transforms.processing import MAERandomResizedCrop as Reference

    n, side = 4000, 64
    t = MAERandomResizedCrop(scale=side)
    np.random.seed(0)
    ours = np.array([t.crop_box(side, side)[2:] for _ in range(n)])  # (n, 2): h, w
    torch.manual_seed(0)
    pil = Image.new('RGB', (side, side))
    ref = np.array([Reference.get_params(pil, (0.2, 1.0), (3 / 4, 4 / 3))[2:] for _ in range(n)])
    for boxes in (ours, ref):
        assert boxes.min() >= 1 and boxes.max() <= side
    frac_ours, frac_ref = ours.prod(1) / side**2, ref.prod(1) / side**2
    assert frac_ours.mean() < 0.6 and abs(frac_ours.mean() - frac_ref.mean()) < 0.015
    full_ours, full_ref = (ours == side).any(1).mean(), (ref == side).any(1).mean()
    assert full_ours > 0.1 and abs(full_ours - full_ref) < 0.03


def test_mae_crop_output_and_registry():
    t = TRANSFORMS.build(dict(type='MAERandomResizedCrop', scale=32, crop_ratio_range=(0.2, 1.0)))
    assert type(t) is MAERandomResizedCrop and t.interpolation == 'bicubic' and t.backend == 'pillow'
    out = t(dict(img=_image(50, 70)))
    assert out['img'].shape == (32, 32, 3) and out['img'].dtype == np.uint8 and out['img_shape'] == (32, 32)
    assert repr(t) == (
        'MAERandomResizedCrop(scale=(32, 32), crop_ratio_range=(0.2, 1.0), '
        "aspect_ratio_range=(0.75, 1.3333333333333333), interpolation='bicubic', backend='pillow')"
    )
    assert type(TRANSFORMS.build(dict(type='RandomResizedCrop', scale=8))) is RandomResizedCrop


# ---------------------------------------------------------------------------------------------- PackInputs
def test_pack_inputs_image_labels_mask_and_meta():
    pack = TRANSFORMS.build(dict(type='PackInputs', algorithm_keys=('weight', 'absent')))
    assert isinstance(pack, PackInputs)
    img = _image(6, 8)
    mask = np.eye(2, dtype=bool)
    out = pack(dict(img=img, gt_label=3, mask=mask, weight=torch.ones(2), img_path='x.jpg', sample_idx=5, foo=1))
    inputs, sample = out['inputs'], out['data_samples']
    assert set(out) == {'inputs', 'data_samples'}
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, 6, 8) and inputs.is_contiguous()
    assert torch.equal(inputs, torch.from_numpy(img).permute(2, 0, 1))  # channel order kept (BGR in, BGR out)
    assert not np.shares_memory(inputs.numpy(), img)
    assert sample.gt_label.tolist() == [3] and sample.gt_label.dtype == torch.int64
    assert torch.equal(sample.mask, torch.from_numpy(mask))
    assert torch.equal(sample.weight, torch.ones(2)) and 'absent' not in sample
    assert sample.metainfo == dict(img_path='x.jpg', sample_idx=5) and 'foo' not in sample

    grey = pack(dict(img=_image(5, 4, channels=0)))
    assert grey['inputs'].shape == (1, 5, 4) and 'gt_label' not in grey['data_samples']
    with pytest.raises(KeyError, match="no 'img'"):
        pack(dict(image=img))


@pytest.mark.parametrize('width', [1, 15, 16, 17, 224, 231])
def test_pack_inputs_copy_of_contiguous_flipped_and_strided_images(width):
    # the SIMD HWC -> CHW copy (mimlab._jpeg.planar, 16 pixels at a time, scalar tail) for contiguous images and
    # left-right flipped views of them; other layouts (a crop view, another dtype) take numpy's copy
    from mimlab.datasets.transforms import formatting

    img = np.random.default_rng(width).integers(0, 256, (5, width, 3), dtype=np.uint8)
    views = [img, img[:, ::-1], img[1:4, : max(width - 2, 1)], img[::2, ::-1], img.astype(np.float32)[:, ::-1]]
    for view in views:
        out = PackInputs.to_tensor(view)
        assert out.is_contiguous() and out.dtype == torch.from_numpy(view.copy()).dtype
        assert np.array_equal(out.numpy(), view.transpose(2, 0, 1)) and not np.shares_memory(out.numpy(), img)
    if formatting._planar is not None:  # the C path ran for the first two
        dst = np.empty((3, 5, width), np.uint8)
        formatting._planar(img, dst, 5, width, True)
        assert np.array_equal(dst, img[:, ::-1].transpose(2, 0, 1))
        with pytest.raises(ValueError, match='planar'):
            formatting._planar(img, dst, 5, width + 1, False)


def test_pack_inputs_collates_to_a_batch():
    pack = PackInputs()
    samples = [pack(dict(img=_image(8, 8, seed=i), gt_label=i)) for i in range(3)]
    batch = default_collate(samples)
    assert batch['inputs'].shape == (3, 3, 8, 8) and batch['inputs'].dtype == torch.uint8
    assert [s.gt_label.item() for s in batch['data_samples']] == [0, 1, 2]


# ---------------------------------------------------------------------------------------- mmcv, as-is
def test_mmcv_loading_and_flip_build_from_mimlab_scope(tmp_path):
    with DefaultScope.overwrite_default_scope('mimlab'):
        load = TRANSFORMS.build(dict(type='LoadImageFromFile'))
        flip = TRANSFORMS.build(dict(type='RandomFlip', prob=1.0, direction='horizontal'))
    assert type(load) is LoadImageFromFile and type(flip) is RandomFlip  # mmcv's own, not re-registered
    assert 'LoadImageFromFile' not in TRANSFORMS.module_dict and 'RandomFlip' not in TRANSFORMS.module_dict
    img = _image(6, 9)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    res = flip(load(dict(img_path=str(tmp_path / 'a.png'))))
    np.testing.assert_array_equal(res['img'], img[:, ::-1])  # BGR, as written, then mirrored
    assert res['ori_shape'] == (6, 9) and res['flip'] is True and res['flip_direction'] == 'horizontal'

    with pytest.raises(FileNotFoundError, match='missing.png'):
        load(dict(img_path=str(tmp_path / 'missing.png')))
    (tmp_path / 'corrupt.jpg').write_bytes(b'\x00not an image at all')
    with pytest.raises(Exception, match='corrupt.jpg'):
        load(dict(img_path=str(tmp_path / 'corrupt.jpg')))


# ------------------------------------------------------------------------------ classification transforms
def test_timm_randaugment_and_resize_edge_on_bgr_arrays():
    from mimlab.datasets.transforms import ResizeEdge, TimmRandAugment

    t = TimmRandAugment('rand-m9-mstd0.5-inc1', img_size=32)
    img = _image(32, 32)
    np.random.seed(0)
    random.seed(0)
    for _ in range(2000):  # includes magnitude draws at the cap, where posterize would keep 0 bits
        out = t(dict(img=img))['img']
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    resized = ResizeEdge(16, edge='short')(dict(img=np.zeros((40, 60, 3), np.uint8)))
    assert resized['img'].shape == (16, 24, 3)


def test_resize_edge_and_pillow_resize_give_pillows_pixels():
    """ResizeEdge and the 'pillow' backend resize with mimlab._jpeg.resample where it applies (3-channel uint8,
    bilinear / bicubic) and PIL otherwise (grey, lanczos): PIL.Image.resize's pixels either way."""
    from mimlab.datasets.transforms import ResizeEdge
    from mimlab.datasets.transforms.processing import pillow_resize

    rng = np.random.RandomState(0)
    colour = rng.randint(0, 256, (75, 130, 3)).astype(np.uint8)
    colour[::3] //= 2
    out = ResizeEdge(48, edge='short', interpolation='bicubic')(dict(img=colour))['img']
    np.testing.assert_array_equal(out, np.asarray(Image.fromarray(colour).resize((83, 48), Image.BICUBIC)))
    for img, interpolation, pil in [
        (colour[5:70, 3:120], 'bilinear', Image.BILINEAR),  # a strided crop
        (colour[..., 0].copy(), 'bicubic', Image.BICUBIC),  # grey: PIL
        (colour, 'lanczos', Image.LANCZOS),  # not in the C kernel: PIL
    ]:
        expected = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((31, 90), pil))
        np.testing.assert_array_equal(pillow_resize(img, (90, 31), interpolation), expected)
