"""vis_scheduler and browse_dataset: the lr per iteration equals what mmengine's Runner sets (a real run) and a hand
computation of the MAE recipe at ImageNet scale; the pictures of the data pipeline show the packed pixels in RGB,
with masks darkened exactly where the mask generator put them; each tool's ``main`` once (in this process: a new
one spends ~8 s importing)."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from mimlab.analysis.browse import browse_samples, phase_dataset
from mimlab.analysis.param_schedule import curve_stats, iters_per_epoch, param_schedule
from mimlab.visualization import browse_grid, darken_masked, image_grid, isolated_rng

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / 'configs' / 'demo'
MAE_DEMO = DEMO / 'mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py'
A2MIM_DEMO = DEMO / 'a2mim_resnet-test-l3_1xb64-coslr-10e_builtin-64px.py'
FT_DEMO = DEMO / 'vit-test-p4_ft-1xb128-coslr-10e_builtin-32px.py'
MAE_300E = ROOT / 'configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / 'tools/visualization' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------------- vis_scheduler


@pytest.mark.parametrize(
    'n,batch,gpus,drop_last,round_up',
    [(1000, 64, 1, False, True), (1000, 64, 1, True, True), (4095, 512, 8, True, True), (4095, 512, 8, True, False),
     (1281167, 512, 8, False, True), (1281167, 128, 8, True, True), (20, 8, 3, False, False)],
)  # fmt: skip
def test_iters_per_epoch_is_len_of_the_train_dataloader_on_rank_0(monkeypatch, n, batch, gpus, drop_last, round_up):
    """What mmengine's Runner converts epochs with: len(DataLoader) over DefaultSampler's share of rank 0."""
    import mmengine.dataset.sampler as sampler_mod
    from torch.utils.data import DataLoader

    monkeypatch.setattr(sampler_mod, 'get_dist_info', lambda: (0, gpus))
    sampler = sampler_mod.DefaultSampler(range(n), shuffle=False, seed=0, round_up=round_up)
    expected = len(DataLoader(range(n), batch_size=batch, sampler=sampler, drop_last=drop_last))
    assert iters_per_epoch(n, batch, gpus, drop_last) == expected


def test_schedule_equals_the_lr_a_runner_sets_every_iteration(tmp_path):
    """A real run of the demo MAE (20 images, batch 8: 3 iterations per epoch, 3 epochs) with auto_scale_lr: the lr of
    both param groups and the wrapper's base lr before every iteration, bit for bit."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    cfg = Config.fromfile(str(MAE_DEMO))
    cfg.work_dir = str(tmp_path)
    cfg.train_dataloader.update(batch_size=8, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.num_samples = 20
    cfg.train_cfg.max_epochs = 3
    cfg.auto_scale_lr = dict(base_batch_size=16, enable=True)  # x 0.5 on the groups, not on base_lr (mmengine)
    cfg.custom_hooks = []
    cfg.default_hooks.checkpoint = dict(type='AtomicCheckpointHook', interval=100)
    cfg.launcher = 'none'

    class Recorder(Hook):
        def __init__(self):
            self.lrs = []

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            wrapper = runner.optim_wrapper
            self.lrs.append([g['lr'] for g in wrapper.optimizer.param_groups] + [wrapper.base_param_settings['lr']])

    schedule = param_schedule(cfg)
    runner = Runner.from_cfg(cfg)
    recorder = Recorder()
    runner.register_hook(recorder)
    runner.train()
    logged = np.array(recorder.lrs)  # (T, 2 groups + base)
    assert logged.shape == (9, 3) and schedule.total_iters == 9 and schedule.iters_per_epoch == 3
    assert list(schedule.curves) == ['base_lr', 'groups 0-1']
    np.testing.assert_array_equal(schedule.curves['base_lr'], logged[:, 2])
    np.testing.assert_array_equal(schedule.curves['groups 0-1'], logged[:, 0])
    np.testing.assert_array_equal(logged[:, 0], logged[:, 1])
    assert logged[0, 0] == pytest.approx(0.5 * logged[0, 2])


def test_mae_vit_b_300e_on_imagenet_is_40_epochs_of_linear_warmup_then_cosine():
    """8 GPUs x 512 on 1,281,167 images: ceil(160,146 / 512) = 313 iterations per epoch (drop_last=False); lr
    1.5e-4 x 4096 / 256 = 2.4e-3 reached after 40 x 313 iterations of LinearLR from 1e-4 x lr, then cosine to 0."""
    cfg = Config.fromfile(str(MAE_300E))
    s = param_schedule(cfg, dataset_size=1281167, ngpus=8)
    assert not s.model_built and s.iters_per_epoch == 313 and s.total_iters == 300 * 313
    base, warmup, total = 1.5e-4 * 4096 / 256, 40 * 313, 300 * 313
    t = np.arange(total)
    linear = base * (1e-4 + (1 - 1e-4) * t / (warmup - 1))  # mmengine's LinearLR reaches the lr at end - 1
    cosine = base * (1 + np.cos(np.pi * (t - warmup) / (total - warmup))) / 2
    np.testing.assert_allclose(s.main, np.where(t < warmup, linear, cosine), rtol=1e-9, atol=1e-15)
    st = curve_stats(s.main)
    assert st['first'] == pytest.approx(2.4e-7) and st['peak'] == pytest.approx(2.4e-3)
    assert (st['peak_iter'], st['warmup_iters']) == (warmup - 1, warmup)
    assert list(s.curves) == ['base_lr = groups 0-1']  # decay and no-decay groups share the lr


def test_layer_decay_groups_follow_their_depth():
    """Fine-tuning demo (4 blocks, layer decay 0.75): the config's model is built; depth d (0 = patch embedding,
    5 = head) has lr x 0.75^(5 - d); the cosine ends at the same eta_min for every group."""
    s = param_schedule(Config.fromfile(str(FT_DEMO)))
    assert s.model_built and s.iters_per_epoch == 4096 // 128  # drop_last=True
    curves = list(s.curves.items())
    assert [label for label, _ in curves] == [
        'base_lr = groups 10-11', 'groups 0-1', 'groups 2-3', 'groups 4-5', 'groups 6-7', 'groups 8-9'
    ]  # fmt: skip
    base = curves[0][1]
    for depth, (_, lr) in enumerate(curves[1:]):
        peak = 32 - 1  # one warmup epoch of 32 iterations
        assert lr[0] == pytest.approx(base[0] * 0.75 ** (5 - depth), rel=1e-12)
        assert lr[peak] == pytest.approx(2e-3 * 0.75 ** (5 - depth), rel=1e-12)
        assert lr[-1] == pytest.approx(1e-6, rel=0.1)


def test_lr_mult_and_no_decay_groups_of_paramwise_cfg():
    """A2MIM demo (LayerDecayOptimWrapperConstructor with lr_mult={'mask_token': 0.1}): groups (decay), (no decay,
    the mask token at 0.1 x lr), (no decay: norms, biases); weight decay 0.05 or 0, constant."""
    cfg = Config.fromfile(str(A2MIM_DEMO))
    lr = param_schedule(cfg)
    assert lr.model_built and list(lr.curves) == ['base_lr = groups 0, 2', 'group 1']
    mask_token = lr.curves['group 1']
    np.testing.assert_allclose(mask_token[:32], 0.1 * lr.main[:32], rtol=1e-12)  # warmup: proportional
    wd = param_schedule(cfg, param='weight_decay')
    assert sorted({float(v[0]) for v in wd.curves.values()}) == [0.0, 0.05]
    assert all(np.all(v == v[0]) for v in wd.curves.values())
    momentum = param_schedule(cfg, param='momentum')
    assert list(momentum.curves) == ['base_momentum = groups 0-2'] and np.all(momentum.main == 0.9)  # AdamW beta1


def test_iteration_based_loop_needs_no_dataset_size_and_epoch_based_asks_for_it():
    cfg = Config.fromfile(str(MAE_300E))
    with pytest.raises(ValueError, match=r'train_dataloader\.dataset \(ImageNet\).*--dataset-size'):
        param_schedule(cfg)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=50)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10),
        dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=10),
    ]
    s = param_schedule(cfg)
    assert s.total_iters == 50 and s.iters_per_epoch is None and s.max_epochs is None
    assert curve_stats(s.main)['warmup_iters'] == 10
    assert s.main[-1] == pytest.approx(2.4e-3 * (1 + math.cos(math.pi * 39 / 40)) / 2)  # cosine over 40 iterations


def test_vis_scheduler_tool(tmp_path, capsys):
    out = tmp_path / 'lr.png'
    _tool('vis_scheduler').main([str(MAE_DEMO), '--save-path', str(out), '--window-size', '6*4'])
    printed = capsys.readouterr().out
    assert 'iterations  1920 = 30 epochs x 64 per epoch = 4096 images / (1 GPU x 64), ceil' in printed
    assert 'base_lr = groups 0-1       1.2e-06      0.0012       63       1e-05  64 iters (1 epoch)' in printed
    assert Image.open(out).size == (600, 400)
    with pytest.raises(SystemExit, match='--dataset-size'):
        _tool('vis_scheduler').main([str(MAE_300E), '--ngpus', '8', '--save-path', str(tmp_path / 'x.png')])


# -------------------------------------------------------------------------------------------------- browse_dataset


def test_image_grid_places_tiles_of_different_sizes_under_titles():
    a = np.full((8, 16, 3), 10, np.uint8)
    b = np.full((24, 8, 3), 200, np.uint8)
    grid = image_grid([[a, b], [None, a]], min_tile=16, gap=2)  # b enlarged 2x: (48, 16); columns 16 wide
    assert grid.shape == (48 + 2 + 8, 16 + 2 + 16, 3)
    assert (grid[:8, :16] == 10).all() and (grid[8:48, :16] == 255).all()  # a, then the rest of its cell
    assert (grid[:48, 18:34] == 200).all() and (grid[50:, 18:34] == 10).all() and (grid[50:, :16] == 255).all()
    titled = image_grid([[a, b]], titles=['one', 'two'], row_titles=['#0'], min_tile=16, gap=2)
    assert (titled[:18] < 128).any() and (titled[20:30, :12] < 128).any()  # the header, the row title
    assert (titled[18:, -1] == 200).any()  # b in the last column, below the header


def test_darken_masked_darkens_exactly_the_masked_cells():
    img = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    mask = np.array([[1, 0, 0], [0, 0, 1]])  # (2, 3) cells of 4 x 4 pixels
    out = darken_masked(img, mask)
    m = mask.repeat(4, 0).repeat(4, 1).astype(bool)
    assert np.array_equal(out[~m], img[~m]) and np.array_equal(out[m], (img[m] * 0.3).astype(np.uint8))


def test_browse_shows_the_packed_input_in_rgb_and_the_mask_of_the_pipeline():
    """A2MIM demo (built-in images, BGR): 'transformed' is PackInputs' uint8 input with its channels reversed,
    'masked' darkens the 16-px cells of its 4 x 4 mask, 'original' is the rendered image in RGB."""
    cfg = Config.fromfile(str(A2MIM_DEMO))
    samples = browse_samples(cfg, 'train', num=3, seed=1, original=True)
    dataset = phase_dataset(cfg, 'train')
    with isolated_rng(1):
        packed = [dataset[i] for i in range(3)]
    for s, p in zip(samples, packed):
        rgb = p['inputs'].flip(0).permute(1, 2, 0).numpy()  # BGR (3, H, W) -> RGB (H, W, 3)
        assert np.array_equal(s['image'], rgb) and s['image'].shape == (64, 64, 3)
        mask = p['data_samples'].mask.numpy()
        assert mask.shape == (4, 4) and mask.sum() == 10  # ceil(16 x 0.6)
        assert np.array_equal(s['masked'], darken_masked(rgb, mask))
        assert np.array_equal(s['original'], dataset.render(s['index'])[0][..., ::-1])
    assert [s['title'] for s in samples] == ['#0 disc_solid', '#1 square_solid', '#2 triangle_solid']
    grid = browse_grid(samples)
    assert grid.shape[0] == 18 + 3 * 128 + 2 * 4  # a header, three rows of 64-px images enlarged 2x
    again = browse_samples(cfg, 'train', num=3, seed=1)
    assert all(np.array_equal(a['masked'], b['masked']) for a, b in zip(samples, again))  # --seed: repeatable


def _jpeg_config(tmp_path: Path, root: Path) -> Path:
    cfg = tmp_path / 'jpeg_tree.py'
    cfg.write_text(
        f"_base_ = '{A2MIM_DEMO}'\n"
        'train_dataloader = dict(dataset=dict(_delete_=True, type="ImageNet", data_root=' + repr(str(root)) + ', '
        'split="train", pipeline=[dict(type="LoadImageFromFile"), dict(type="RandomResizedCrop", scale=64), '
        'dict(type="SimMIMMaskGenerator", input_size=64, mask_patch_size=16, model_patch_size=16, mask_ratio=0.6), '
        'dict(type="PackInputs")]))\n'
    )
    return cfg


def test_browse_a_jpeg_tree_shows_true_colours(tmp_path):
    """LoadImageFromFile decodes to BGR: a file of RGB (200, 30, 60) must come out as (200, 30, 60)."""
    from mimlab.datasets.builtin import write_builtin_dataset

    root = tmp_path / 'tree'
    write_builtin_dataset(str(root), num_train=4, num_val=0, img_size=48, fmt='jpg')
    (root / 'meta' / 'train.txt').unlink()  # scan the folders, so the extra class below counts
    (root / 'train' / '99_red').mkdir()
    Image.new('RGB', (80, 60), (200, 30, 60)).save(root / 'train' / '99_red' / 'a.jpg', quality=95)
    cfg = Config.fromfile(str(_jpeg_config(tmp_path, root)))
    samples = browse_samples(cfg, 'train', num=10, original=True)
    assert len(samples) == 5 and samples[-1]['title'] == '#4 99_red'
    for key in ('image', 'original'):
        assert np.abs(samples[-1][key].reshape(-1, 3).astype(int) - (200, 30, 60)).max() <= 3, key
    assert samples[-1]['original'].shape == (60, 80, 3) and samples[0]['masked'] is not None
    cfg.train_dataloader.dataset.pipeline = [dict(type='PackEncodedWithCrop', scale=32)]  # the GPU input path
    with pytest.raises(ValueError, match='PackEncodedWithCrop'):
        browse_samples(cfg, 'train', num=1)


def test_browse_errors_name_the_config_key(tmp_path):
    cfg = Config.fromfile(str(MAE_DEMO))
    with pytest.raises(ValueError, match=r'no val_dataloader to browse \(it has: train_dataloader\)'):
        browse_samples(cfg, 'val')
    cfg = Config.fromfile(str(_jpeg_config(tmp_path, tmp_path / 'missing')))
    with pytest.raises(ValueError, match=r'cannot build train_dataloader\.dataset \(ImageNet\).*does not exist'):
        browse_samples(cfg, 'train')


def test_browse_dataset_tool(tmp_path):
    from mimlab.datasets.builtin import write_builtin_dataset

    root = tmp_path / 'tree'
    write_builtin_dataset(str(root), num_train=3, num_val=0, img_size=48, fmt='jpg')
    cfg = _jpeg_config(tmp_path, root)
    out = tmp_path / 'vis'
    _tool('browse_dataset').main([str(cfg), '--num', '3', '--mode', 'pipeline', '--output-dir', str(out)])
    grid = np.asarray(Image.open(out / 'train_0-2.png'))
    # rows as high as the loaded 48-px image enlarged 3x (the 64-px crops: 2x); columns original, transformed, masked
    assert grid.shape[0] == 18 + 3 * 144 + 2 * 4 and (grid[:18] < 128).any()
    with pytest.raises(SystemExit, match='no test_dataloader'):
        _tool('browse_dataset').main([str(cfg), '--phase', 'test', '--output-dir', str(out)])
