"""Reconstruction visualisation: every algorithm's ``reconstruct`` gives the prediction its loss sees, the grid shows
the input's own pixels, the hook leaves training untouched, and the command-line tool writes the picture."""

import copy
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from mimlab.apis import register_all_modules
from mimlab.models.algorithms.mae import patchify
from mimlab.registry import MODELS, TRANSFORMS
from mimlab.structures import DataSample
from mimlab.visualization import isolated_rng, reconstruct_batch, reconstruction_grid, to_uint8

from .helpers import tiny_mae

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / 'configs' / 'demo'
register_all_modules()


def _demo_model(name: str):
    model = MODELS.build(Config.fromfile(str(DEMO / name)).model)
    model.init_weights()
    return model


def _block_masks(model_patch: int, size: int, n: int, block: int = 16) -> list:
    gen = TRANSFORMS.build(
        dict(type='SimMIMMaskGenerator', input_size=size, mask_patch_size=block, model_patch_size=model_patch)
    )
    samples = []
    for _ in range(n):
        s = DataSample()
        s.set_mask(gen(dict())['mask'])
        samples.append(s)
    return samples


def _renormalised_mse(out: dict, p: int, masked_only: bool) -> torch.Tensor:
    """The norm_pix MSE computed from the reconstruction images: undoing norm_pix must be invertible."""
    target = patchify(out['target'], p)
    mean, std = target.mean(-1, keepdim=True), (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    err = (((patchify(out['pred'], p) - mean) / std - (target - mean) / std) ** 2).mean(-1)  # (B, L)
    if not masked_only:
        return err.mean()
    m = patchify(out['mask'], p)[..., 0]  # (B, L)
    return (err * m).sum() / m.sum()


def _masked_pixel_loss(out: dict, power: int) -> torch.Tensor:
    err = (out['pred'] - out['target']).abs() ** power * out['mask']
    return err.sum() / (out['mask'].sum() * 3)


def _case(name: str):
    """(model, inputs, data_samples, loss of the reconstruct outputs) for one algorithm."""
    torch.manual_seed(0)
    np.random.seed(0)
    if name in ('mae', 'pixmim'):
        extra = (
            dict(target_generator=dict(type='LowFreqTargetGenerator', radius=4, img_size=32))
            if name == 'pixmim'
            else {}
        )
        model = tiny_mae('PixMIM' if name == 'pixmim' else 'MAE', patch_size=4, **extra)
        return model, torch.randn(2, 3, 32, 32), None, lambda out: _renormalised_mse(out, 4, True)
    if name.startswith('simmim'):
        backbone = (
            dict(type='SimMIMSwinTransformer', arch='test', img_size=64, window_size=2)
            if name == 'simmim-swin'
            else dict(type='SimMIMViT', arch='test', img_size=64, patch_size=8)
        )
        model = MODELS.build(
            dict(type='SimMIM', backbone=backbone, neck=dict(type='SimMIMLinearDecoder'), head=dict(type='SimMIMHead'))
        )
        model.init_weights()
        p = 4 if name == 'simmim-swin' else 8
        return model, torch.randn(2, 3, 64, 64), _block_masks(p, 64, 2), lambda out: _masked_pixel_loss(out, 1)
    if name == 'a2mim':
        model = _demo_model('a2mim_resnet-test-l3_1xb64-coslr-10e_builtin-64px.py')
        samples = _block_masks(16, 64, 2)
        mask = torch.stack([s.mask for s in samples])
        return model, torch.randn(2, 3, 64, 64), samples, lambda out: model.head.loss(out['pred'], out['target'], mask)
    model = _demo_model('mixmim_mixmim-test_1xb64-coslr-10e_builtin-64px.py')
    return model, torch.randn(4, 3, 64, 64), None, lambda out: _renormalised_mse(out, model.head.patch_size, False)


@pytest.mark.parametrize('name', ['mae', 'pixmim', 'simmim-swin', 'simmim-vit', 'a2mim', 'mixmim'])
def test_reconstruct_gives_the_prediction_the_loss_sees(name):
    model, x, samples, loss_of = _case(name)
    model.eval()
    with isolated_rng(7):
        loss = model.loss(x, copy.deepcopy(samples))['loss']
    with isolated_rng(7):
        out = model.reconstruct(x, samples)
    assert set(out) == {'target', 'masked', 'pred', 'pasted', 'mask'}
    for key in ('target', 'masked', 'pred', 'pasted'):
        assert out[key].shape == x.shape, key
    assert out['mask'].shape == (x.shape[0], 1, *x.shape[2:])
    assert set(out['mask'].unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(loss_of(out), loss, rtol=1e-4, atol=1e-6)
    visible = (out['mask'] == 0).expand_as(x)
    assert torch.equal(out['pasted'][visible], x[visible])  # the visible pixels are the input's own
    masked = (out['mask'] == 1).expand_as(x)
    assert torch.equal(out['pasted'][masked], out['pred'][masked])
    assert torch.equal(out['target'], x) == (name != 'pixmim')


def test_masked_panel_is_what_the_encoder_gets():
    model, x, _, _ = _case('mixmim')
    with isolated_rng(0):
        out = model.reconstruct(x)
    m = out['mask']
    assert 0 < m.mean() < 1
    # image b shows its partner B-1-b at the mask's 1s
    torch.testing.assert_close(out['masked'], x * (1 - m) + x.flip(0) * m)
    model, x, samples, _ = _case('a2mim')
    out = model.reconstruct(x, samples)
    fill = x.mean((2, 3), keepdim=True).expand_as(x)
    masked = (out['mask'] == 1).expand_as(x)
    assert torch.equal(out['masked'][masked], fill[masked])
    with pytest.raises(ValueError, match='A2MIM needs a mask per sample'):
        model.reconstruct(x, None)


def test_grid_shows_the_input_pixels_and_the_target_only_when_it_differs():
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    img = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    x = (img.float() - mean) / std
    assert np.array_equal(to_uint8(x, mean, std), img.permute(0, 2, 3, 1).numpy())  # exact round trip
    out = dict(target=x, masked=x * 0, pred=x, pasted=x, mask=torch.zeros(2, 1, 16, 16))
    grid = reconstruction_grid(x, out, mean, std, min_tile=64, gap=4, titles=False)
    assert grid.shape == (2 * 64 + 4, 4 * 64 + 3 * 4, 3) and grid.dtype == np.uint8
    big = img[1].permute(1, 2, 0).numpy().repeat(4, 0).repeat(4, 1)
    assert np.array_equal(grid[68:132, 0:64], big)  # row 2, column 'original': the input enlarged 4x
    out['target'] = x + 1
    titled = reconstruction_grid(x, out, mean, std, min_tile=64, gap=4)
    assert (titled.shape[1] + 4) % 5 == 0  # the 'target' column joins: 5 tiles
    assert (titled.shape[1] + 4) // 5 - 4 >= 80  # widened until 'reconstruction' fits above its tile
    assert (titled[:18] < 128).any()  # the header has text


def _tiny_mae_cfg(tmp_path: Path, hooks: list) -> Config:
    cfg = Config.fromfile(str(DEMO / 'mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py'))
    cfg.work_dir = str(tmp_path)
    # mmengine keys its visualizer instance by the experiment name (config name + timestamp to the second): two runs
    # started within one second would share the first run's visualizer and write into its work dir
    cfg.experiment_name = f'recon-{tmp_path.name}'
    cfg.train_dataloader.dataset.num_samples = 32
    cfg.train_dataloader.batch_size = 8
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_cfg.max_epochs = 2
    cfg.custom_hooks = hooks
    cfg.default_hooks.checkpoint = dict(type='AtomicCheckpointHook', interval=100)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.launcher = 'none'
    return cfg


def test_hook_writes_grids_and_training_is_unchanged(tmp_path):
    from mmengine.runner import Runner

    def train(work_dir: Path, hooks: list) -> dict:
        runner = Runner.from_cfg(_tiny_mae_cfg(work_dir, hooks))
        runner.train()
        return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}

    plain = train(tmp_path / 'plain', [])
    hooked = train(tmp_path / 'hook', [dict(type='ReconstructionHook', interval=1, num_images=3, min_tile=128)])
    for k in plain:
        assert torch.equal(plain[k], hooked[k]), k  # same random numbers, same weights
    images = sorted((tmp_path / 'hook').glob('*/vis_data/vis_image/reconstruction_*.png'))
    assert [p.name for p in images] == ['reconstruction_1.png', 'reconstruction_2.png']
    grid = np.asarray(Image.open(images[0]))
    assert grid.shape == (18 + 3 * 128 + 2 * 4, 4 * 128 + 3 * 4, 3)
    assert not np.array_equal(grid, np.asarray(Image.open(images[1])))  # the model changed
    assert not list((tmp_path / 'plain').glob('*/vis_data/vis_image/*.png'))


def test_reconstruct_batch_restores_rng_and_mode():
    model = tiny_mae(patch_size=4).train()
    data = dict(inputs=torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8), data_samples=None)
    torch.manual_seed(3)
    before = torch.rand(1)
    torch.manual_seed(3)
    _, a = reconstruct_batch(model, data, seed=1)
    assert torch.equal(torch.rand(1), before) and model.training
    _, b = reconstruct_batch(model, data, seed=1)
    assert torch.equal(a['mask'], b['mask'])  # the same seed, the same mask
    classifier = MODELS.build(Config.fromfile(str(DEMO / 'vit-test-p4_ft-1xb128-coslr-10e_builtin-32px.py')).model)
    with pytest.raises(TypeError, match='no reconstruct'):
        reconstruct_batch(classifier, data)


def test_visualize_reconstruction_tool(tmp_path):
    cfg = DEMO / 'a2mim_resnet-test-l3_1xb64-coslr-10e_builtin-64px.py'
    model = _demo_model(cfg.name)
    ckpt = tmp_path / 'a2mim.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), ckpt)
    imgs = []
    for i, (h, w) in enumerate([(90, 120), (64, 64)]):
        path = tmp_path / f'img{i}.jpg'
        cv2.imwrite(str(path), np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8))
        imgs.append(str(path))
    out = tmp_path / 'vis' / 'a2mim.png'
    tool = str(ROOT / 'tools' / 'analysis_tools' / 'visualize_reconstruction.py')
    cmd = [sys.executable, tool, str(cfg), '--checkpoint', str(ckpt), '--img-path', *imgs, '--out-file', str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    grid = np.asarray(Image.open(out))
    assert grid.shape == (18 + 2 * 128 + 4, 4 * 128 + 3 * 4, 3)
    r2 = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert np.array_equal(np.asarray(Image.open(out)), grid)  # --seed 0: the same masks every time
    bad = [*cmd[: cmd.index('--img-path') + 1], str(tmp_path / 'missing.jpg'), '--out-file', str(out)]
    r3 = subprocess.run(bad, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r2.returncode == 0 and r3.returncode != 0 and 'missing.jpg' in r3.stderr
