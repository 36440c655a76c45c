"""PixMIM's low-frequency target generator and algorithm."""

import math

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mimlab.models.algorithms.pixmim import LowFreqTargetGenerator, low_pass_filter
from mimlab.registry import MODELS
from tests.helpers import tiny_mae

MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)


def _lattice_points_in_disc(r: int) -> int:
    return sum(1 for i in range(-r, r + 1) for j in range(-r, r + 1) if i * i + j * j <= r * r)


def test_default_filter_keeps_exactly_the_bins_within_radius():
    f = low_pass_filter(224, 224, 40)
    assert f.sum().item() == _lattice_points_in_disc(40) == 5025
    assert f[112, 112] == 1 and f[112, 152] == 1 and f[112, 153] == 0 and f[112 + 28, 112 + 28] == 1
    # Hermitian symmetric about DC, so the filtered image is real
    k = torch.arange(1, 224)
    assert torch.equal(f[112 + 0, 112 + k[:100]], f[112, 112 - k[:100]])


def test_reference_filter_count_matches_mmselfsup():
    # mmselfsup's half-bin-off centre keeps 5,024 bins at 224/40 (reference notes §2.3)
    assert low_pass_filter(224, 224, 40, reference_compatible=True).sum().item() == 5024


def _sinusoids(freqs, size=224):
    y, x = torch.meshgrid(
        torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing='ij'
    )
    img = torch.zeros(size, size, dtype=torch.float64)
    for fy, fx, amp in freqs:
        img += amp * torch.cos(2 * math.pi * (fy * y + fx * x) / size + 0.3)
    return img


def test_low_frequencies_pass_and_high_frequencies_are_removed():
    gen = LowFreqTargetGenerator(radius=40, img_size=224)
    low = _sinusoids([(3, 5, 20.0), (0, 39, 10.0), (25, -30, 8.0)])  # all within radius 40 of DC
    high = _sinusoids([(50, 10, 15.0), (0, 90, 12.0)])  # outside
    pixels = (128 + low + high).float().expand(1, 3, 224, 224)
    target = gen((pixels - MEAN) / STD, MEAN, STD) * STD + MEAN
    expect = (128 + low).float().expand(1, 3, 224, 224)
    assert torch.allclose(target, expect, atol=1e-3)  # pixel units, i.e. ~1e-5 relative to the 0-255 range
    assert (target - expect).abs().max() / 255 < 1e-5


def test_constant_image_is_its_own_target():
    gen = LowFreqTargetGenerator(radius=40, img_size=224)
    x = ((torch.full((2, 3, 224, 224), 77.0) - MEAN) / STD).float()
    assert torch.allclose(gen(x, MEAN, STD), x, atol=1e-5)


def _mmselfsup_numpy(x: np.ndarray, radius: int) -> np.ndarray:
    """An independent NumPy version of mmselfsup 1.0's LowFreqTargetGenerator.forward (ImageNet mean/std in 0-1)."""
    mean = np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    _, _, h, w = x.shape
    filt = np.ones((3, h, w))
    for i in range(h):
        for j in range(w):
            if (i - (h - 1) / 2) ** 2 + (j - (w - 1) / 2) ** 2 > radius**2:
                filt[:, i, j] = 0
    img = x * std + mean
    spec = np.fft.fftshift(np.fft.fft2(img), axes=(-2, -1)) * filt
    out = np.abs(np.fft.ifft2(spec))
    return (out - mean) / std


def test_reference_compatible_matches_numpy_mmselfsup():
    gen = LowFreqTargetGenerator(radius=40, img_size=224, reference_compatible=True)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 3, 224, 224)).astype(np.float64)
    x = (torch.from_numpy(pixels) - MEAN.double()) / STD.double()
    ours = gen(x.float(), MEAN, STD).double().numpy()
    ref = _mmselfsup_numpy(x.numpy(), 40)
    assert np.abs(ours - ref).max() < 1e-5 * np.abs(ref).max()
    # in float64 the two procedures agree to round-off
    gen64 = gen.double()
    ours64 = gen64(x, MEAN.double(), STD.double()).numpy()
    assert np.abs(ours64 - ref).max() < 1e-6


def test_wrong_size_is_a_clear_error():
    gen = LowFreqTargetGenerator(radius=4, img_size=32)
    with pytest.raises(ValueError, match='built for'):
        gen(torch.zeros(1, 3, 64, 64), MEAN, STD)


def test_pixmim_keys_are_mae_keys_plus_filter(repo_root):
    import mmpretrain
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS as PT_MODELS

    cfg = Config.fromfile(str(repo_root / 'configs/pixmim/pixmim_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'))
    ours = MODELS.build(cfg.model)
    pt_cfg = Config.fromfile(
        f'{mmpretrain.__path__[0]}/.mim/configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'
    )
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ref = PT_MODELS.build(pt_cfg.model)
    expected = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    expected['target_generator.low_pass_filter'] = (3, 224, 224)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == expected


def test_pixmim_loss_uses_low_frequency_target():
    model = tiny_mae('PixMIM', target_generator=dict(type='LowFreqTargetGenerator', radius=4, img_size=32))
    x = torch.randn(2, 3, 32, 32)
    target = model.make_target(x)
    assert not torch.allclose(target, x)
    torch.manual_seed(0)
    loss = model.loss(x)['loss']
    torch.manual_seed(0)
    latent, mask, ids = model.backbone.forward_masked(x)
    assert torch.allclose(loss, model.head.loss(model.neck(latent, ids), target, mask))
    with pytest.raises(ValueError, match='target_generator'):
        MODELS.build(dict(type='PixMIM', backbone=dict(type='MAEViT', arch='test', img_size=32, patch_size=8)))


# ------------------------------------------------------------------------------------------ SimpleResizedCrop
def _reference_simple_crop(img, s, p, rng_state):
    """Resize (same resize), pad the whole image, crop, flip: the textbook order, with the same random draws."""
    from mimlab.datasets.transforms.simple_crop import SimpleResizedCrop

    np.random.set_state(rng_state)
    resized = SimpleResizedCrop(s, p)._resize_shorter(img)
    h, w = resized.shape[:2]
    top = np.random.randint(0, h + 2 * p - s + 1)
    left = np.random.randint(0, w + 2 * p - s + 1)
    padded = np.pad(resized, ((p, p), (p, p), (0, 0)), mode='reflect')
    out = padded[top : top + s, left : left + s]
    return out[:, ::-1] if np.random.rand() < 0.5 else out


@pytest.mark.parametrize('shape', [(375, 500, 3), (500, 375, 3), (224, 224, 3), (100, 150, 3)])
def test_simple_resized_crop_equals_pad_then_crop(shape):
    from mimlab.datasets.transforms.simple_crop import SimpleResizedCrop

    t = SimpleResizedCrop(scale=224, padding=4)
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    for seed in range(20):
        np.random.seed(seed)
        state = np.random.get_state()
        out = t(dict(img=img))
        assert out['img'].shape == (224, 224, 3) and out['img'].dtype == np.uint8
        top, left = out['crop_offset']
        resized_short = min(shape[:2]) == shape[0]
        h_res, w_res = (224, int(224 * shape[1] / shape[0])) if resized_short else (int(224 * shape[0] / shape[1]), 224)
        # content offsets stay within the padding
        assert -4 <= top <= h_res - 224 + 4 and -4 <= left <= w_res - 224 + 4
        assert np.array_equal(out['img'], _reference_simple_crop(img, 224, 4, state))


def test_simple_resized_crop_fixed_seed_golden():
    from mimlab.datasets.transforms.simple_crop import SimpleResizedCrop

    img = (np.arange(40 * 60 * 3) % 251).astype(np.uint8).reshape(40, 60, 3)
    np.random.seed(0)
    out = SimpleResizedCrop(scale=32, padding=4)(dict(img=img))
    assert out['crop_offset'] == (1, -4) and out['flip'] is False
    assert int(out['img'].astype(np.int64).sum()) == 385981
    assert out['img'][0, :3, 0].tolist() == [167, 163, 159]  # left 4 columns come from the reflect padding
    np.random.seed(0)
    again = SimpleResizedCrop(scale=32, padding=4)(dict(img=img))
    assert np.array_equal(out['img'], again['img'])
