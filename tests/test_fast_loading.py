"""The fused JPEG loader + random resized crop, and the GPU input path run on the CPU.

Distribution: the fused transform draws exactly the boxes of the unfused crops (same numpy draws), and its MAE crop's
area / log-aspect statistics agree with mmpretrain 1.2.0's RandomResizedCrop(scale=(0.2, 1)) over 2000 draws.
Pixels: the fused output equals the unfused ``LoadImageFromFile -> MAERandomResizedCrop(pillow)`` exactly when the
crop is decoded at full scale (``mimlab._jpeg`` decodes and resizes as cv2 and Pillow do; without the extension,
torch's resize kernel is within 0.1 grey levels), and up to the DCT scaling for crops >= 2x the output.
"""

import io
import math
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from mimlab.analysis.pipeline_timing import make_jpegs
from mimlab.registry import MODELS, TRANSFORMS

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
    """Full-scale decode: the unfused pixels (with the C extension; within 0.1 grey levels without it). Reduced
    decode: the DCT scaling differs too."""
    from mimlab.datasets.transforms.fast_loading import region_decoder_available

    exact = region_decoder_available()
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
            if seed < len(paths):  # with the reduced decode switched off, the unfused pixels
                np.random.seed(seed)
                full = _fused(reduced_decode=False)(path)
                assert full['decode_scale'] == 1
                if exact:
                    np.testing.assert_array_equal(full['img'], ref['img'])
                else:
                    assert np.abs(full['img'].astype(int) - ref['img']).mean() < 0.1
    assert len(diffs[1]) > 5 and len(diffs[2]) + len(diffs[4]) > 5, {k: len(v) for k, v in diffs.items()}
    assert max(diffs[1]) == 0 if exact else np.mean(diffs[1]) < 0.1 and max(diffs[1]) < 0.5, diffs[1]
    reduced = diffs[2] + diffs[4] + diffs[8]  # grey levels (0-255)
    assert np.mean(reduced) < 2.0 and max(reduced) < 4.0, reduced


def test_torch_resize_fallback_is_close_to_pillow(monkeypatch):
    """Without the C extension resize_uint8 runs torch's uint8 antialiased kernel: within a grey level of Pillow
    (0.2 on average for a tall 4x shrink, which Pillow >= 13 filters vertically first and torch horizontally)."""
    from PIL import Image

    from mimlab.datasets.transforms import fast_loading, processing

    monkeypatch.setattr(processing, '_jpeg', None)
    img = cv2.GaussianBlur(np.random.RandomState(0).randint(0, 256, (180, 150, 3), np.uint8), (5, 5), 1.5)
    for size, interpolation, pil_filter in [
        ((64, 64), 'bicubic', Image.BICUBIC),
        ((40, 90), 'bilinear', Image.BILINEAR),
    ]:
        ours = fast_loading.resize_uint8(img[10:170, 5:140], size, interpolation)
        ref = np.asarray(Image.fromarray(np.ascontiguousarray(img[10:170, 5:140])).resize(size[::-1], pil_filter))
        err = np.abs(ours.astype(int) - ref)
        assert ours.shape == ref.shape and err.mean() < 0.25 and err.max() <= 1, (size, err.mean(), err.max())


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


# --- the C region decoder (mimlab/csrc/jpeg_region.c) -----------------------------------------------------------


def _can_build_extension() -> bool:
    import shutil

    return shutil.which('cc') is not None and os.path.exists('/usr/include/jpeglib.h')


@pytest.fixture(scope='module')
def region_decoder():
    from mimlab.datasets.transforms.fast_loading import region_decoder_available

    if not region_decoder_available():
        if _can_build_extension():  # the install should have built it here
            pytest.fail('mimlab._jpeg is not built although cc and jpeglib.h exist: reinstall with pip install -e .')
        pytest.skip('mimlab._jpeg not built (no C compiler or libjpeg headers)')


def _jpeg_variants(tmp_path):
    """One photo-like image saved as the JPEG kinds a dataset holds: 4:2:0, 4:2:2, 4:4:4, grey, progressive."""
    from PIL import Image

    src = make_jpegs(str(tmp_path / 'src'), 1, size=(203, 150), quality=95)[0]  # odd sizes: partial iMCUs
    rgb = Image.open(src).convert('RGB')
    out = {}
    for name, kw, img in [
        ('420', dict(subsampling=2), rgb),
        ('422', dict(subsampling=1), rgb),
        ('444', dict(subsampling=0), rgb),
        ('grey', {}, rgb.convert('L')),
        ('progressive', dict(progressive=True, subsampling=2), rgb),
    ]:
        path = tmp_path / f'{name}.jpg'
        img.save(path, 'JPEG', quality=90, **kw)
        out[name] = path.read_bytes()
    return out


def test_region_decode_equals_the_full_decode(tmp_path, region_decoder):
    """Any box at any DCT scale: the region's pixels are exactly cv2's full decode's (same libjpeg-turbo maths)."""
    from mimlab.datasets.transforms.fast_loading import _REDUCED, decode_jpeg_region

    rng = np.random.default_rng(0)
    for name, data in _jpeg_variants(tmp_path).items():
        for s in (1, 2, 4, 8):
            full = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED[s])
            h, w = full.shape[:2]
            boxes = [(0, 0, h, w), (h - 1, w - 1, h, w), (0, 0, 1, 1)]
            boxes += [
                (int(y1), int(x1), int(rng.integers(y1 + 1, h + 1)), int(rng.integers(x1 + 1, w + 1)))
                for y1, x1 in zip(rng.integers(0, h, 12), rng.integers(0, w, 12))
            ]
            for y1, x1, y2, x2 in boxes:
                region = decode_jpeg_region(data, s, (y1, x1, y2, x2))
                np.testing.assert_array_equal(region, full[y1:y2, x1:x2], err_msg=f'{name} 1/{s} {(y1, x1, y2, x2)}')
            # a box beyond the image is clamped to it
            np.testing.assert_array_equal(
                decode_jpeg_region(data, s, (h // 2, w // 2, h + 9, w + 9)), full[h // 2 :, w // 2 :]
            )


def test_region_decoder_errors(tmp_path, region_decoder):
    from mimlab import _jpeg
    from mimlab.datasets.transforms.fast_loading import decode_jpeg_region

    data = _jpeg_variants(tmp_path)['420']
    with pytest.raises(ValueError, match='scale'):
        decode_jpeg_region(data, 3, (0, 0, 4, 4))
    with pytest.raises(ValueError, match='empty region'):
        decode_jpeg_region(data, 1, (5, 5, 5, 9))
    with pytest.raises(ValueError, match='Not a JPEG'):
        decode_jpeg_region(b'\x89PNG\r\n\x1a\n' + bytes(64), 1, (0, 0, 4, 4))
    with pytest.raises(ValueError, match='Not a JPEG'):
        _jpeg.header(b'GIF89a' + bytes(32))


_RESAMPLE_CHECK = """
import sys
import numpy as np
from PIL import Image
from mimlab.datasets.transforms.fast_loading import resize_uint8
rng = np.random.default_rng(int(sys.argv[1]))
sizes = [((8, 2), (4, 1)), ((442, 331), (224, 224)), ((331, 442), (224, 224)), ((300, 300), (224, 224)),
         ((1, 1), (3, 5)), ((50, 37), (224, 224)), ((1000, 700), (37, 41)), ((120, 90), (120, 45)),
         ((90, 120), (45, 120)), ((64, 64), (64, 64)),
         ((3000, 4000), (224, 224))]  # scratch beyond what a thread keeps: a block of its own
sizes += [(tuple(int(v) for v in rng.integers(1, 460, 2)), tuple(int(v) for v in rng.integers(1, 260, 2)))
          for _ in range(60)]
for (H, W), (h, w) in sizes:
    big = rng.integers(0, 256, (H + 6, W + 5, 3), dtype=np.uint8)
    big[::2] //= 3  # stripes: large differences between neighbours, negative lobes of the cubic matter
    crop = big[3:3 + H, 2:2 + W]  # a strided view, as a decoded crop
    for name, f in (('bicubic', Image.BICUBIC), ('bilinear', Image.BILINEAR)):
        ref = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((w, h), f))
        out = resize_uint8(crop, (h, w), name)
        assert out.shape == (h, w, 3) and out.flags.c_contiguous and out.flags.writeable
        assert np.array_equal(out, ref), (H, W, h, w, name, np.abs(out.astype(int) - ref).max())
print('ok')
"""


@pytest.mark.parametrize('simd', ['avx512', 'avx2', 'none'])
def test_resample_equals_pillow(region_decoder, simd):
    """mimlab._jpeg.resample gives the installed Pillow's Image.resize pixels, bit for bit: bicubic and bilinear,
    shrinking and enlarging, tall shrinks (which Pillow >= 13 filters vertically first), crops as strided views,
    with each kernel set the CPU has (AVX-512, AVX2, portable C; MIMLAB_RESAMPLE_SIMD caps the choice, which is made
    once per process, so each runs in a fresh one)."""
    env = dict(os.environ, MIMLAB_RESAMPLE_SIMD=simd)
    run = subprocess.run(
        [sys.executable, '-c', _RESAMPLE_CHECK, str(['avx512', 'avx2', 'none'].index(simd))],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0 and run.stdout.strip() == 'ok', run.stderr[-3000:]


def test_resample_rejects_bad_buffers(region_decoder):
    from mimlab import _jpeg

    img = np.zeros((10, 12, 3), np.uint8)
    with pytest.raises(ValueError, match='filter'):
        _jpeg.resample(img, np.empty((5, 5, 3), np.uint8), 2, True)
    with pytest.raises(ValueError, match='src'):
        _jpeg.resample(np.zeros((10, 12, 4), np.uint8), np.empty((5, 5, 3), np.uint8), 1, True)
    with pytest.raises(ValueError, match='src'):
        _jpeg.resample(img[:, ::2], np.empty((5, 5, 3), np.uint8), 1, True)
    with pytest.raises(ValueError, match='dst'):
        _jpeg.resample(img, np.empty((5, 5), np.uint8), 1, True)
    with pytest.raises((ValueError, BufferError, TypeError)):
        _jpeg.resample(img, np.empty((5, 5, 3), np.uint8)[::2], 1, True)


def _with_exif_orientation(jpeg: bytes, orientation: int, big_endian: bool) -> bytes:
    """Insert an APP1 Exif marker whose IFD0 holds only the orientation tag (a SHORT), in either byte order."""
    import struct

    bo = '>' if big_endian else '<'
    tiff = (b'MM' if big_endian else b'II') + struct.pack(bo + 'HI', 42, 8)
    tiff += struct.pack(bo + 'H', 1) + struct.pack(bo + 'HHI', 0x0112, 3, 1) + struct.pack(bo + 'HH', orientation, 0)
    tiff += struct.pack(bo + 'I', 0)  # no next IFD
    payload = b'Exif\x00\x00' + tiff
    return jpeg[:2] + b'\xff\xe1' + struct.pack('>H', len(payload) + 2) + payload + jpeg[2:]


@pytest.mark.parametrize('big_endian', [False, True])
def test_header_reads_size_and_exif_orientation(tmp_path, region_decoder, big_endian):
    from PIL import Image

    from mimlab import _jpeg

    data = _jpeg_variants(tmp_path)['420']
    assert _jpeg.header(data) == (150, 203, 1)
    rotated = _with_exif_orientation(data, 6, big_endian)
    assert _jpeg.header(rotated) == (150, 203, 6)
    with Image.open(io.BytesIO(rotated)) as im:  # PIL agrees
        assert im.getexif().get(0x0112) == 6


def test_fused_region_decode_changes_no_pixel(jpegs, region_decoder):
    """With and without the region decoder the fused transform gives the same bytes (same boxes, same scales)."""
    for paths in jpegs:
        for seed, path in enumerate(paths * 2):
            np.random.seed(seed)
            ours = _fused()(path)
            np.random.seed(seed)
            ref = _fused(region_decode=False)(path)
            assert ours['crop_bbox'] == ref['crop_bbox'] and ours['decode_scale'] == ref['decode_scale']
            np.testing.assert_array_equal(ours['img'], ref['img'])


def test_fused_exif_rotated_and_cmyk_jpegs(tmp_path):
    """EXIF-rotated JPEGs are drawn on the upright size as LoadImageFromFile sees them; CMYK JPEGs (libjpeg cannot
    convert them to BGR) fall back to cv2; both keep the unfused boxes."""
    from PIL import Image

    data = _jpeg_variants(tmp_path)['420']
    (tmp_path / 'rot.jpg').write_bytes(_with_exif_orientation(data, 6, big_endian=False))
    Image.open(io.BytesIO(data)).convert('CMYK').save(tmp_path / 'cmyk.jpg', 'JPEG', quality=90)
    for name, shape in [('rot.jpg', (203, 150)), ('cmyk.jpg', (150, 203))]:
        path = str(tmp_path / name)
        np.random.seed(3)
        ref = _unfused()(path)
        np.random.seed(3)
        ours = _fused(reduced_decode=False)(path)  # full scale: only the resize kernel differs
        assert ours['ori_shape'] == ref['ori_shape'] == shape and ours['crop_bbox'] == ref['crop_bbox'], name
        assert np.abs(ours['img'].astype(int) - ref['img']).mean() < 0.5, name


def test_fused_flip(jpegs):
    """flip_prob: the output is the unflipped one mirrored (the flip is drawn after the box), at the given rate, with
    RandomFlip's keys; PackInputs copies the mirrored view into a contiguous tensor."""
    path = jpegs[0][0]
    np.random.seed(5)
    plain = _fused()(path)
    np.random.seed(5)
    flipped = _fused(flip_prob=1.0)(path)
    np.testing.assert_array_equal(flipped['img'], plain['img'][:, ::-1])
    assert flipped['flip'] is True and flipped['flip_direction'] == 'horizontal' and 'flip' not in plain
    packed = TRANSFORMS.build(dict(type='PackInputs'))(dict(flipped))['inputs']
    assert packed.is_contiguous() and torch.equal(
        packed, torch.from_numpy(plain['img'][:, ::-1].copy()).permute(2, 0, 1)
    )
    np.random.seed(1)
    t = _fused(flip_prob=0.5)
    rate = np.mean([t(path)['flip'] for _ in range(600)])
    assert abs(rate - 0.5) < 0.065  # 3 sigma of a 600-draw binomial
    with pytest.raises(ValueError, match='flip_prob'):
        _fused(flip_prob=1.5)
