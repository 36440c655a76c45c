"""get_flops, analyze_logs, print_config and collect_env: exact FLOP counts on the demo configs, log statistics
against hand computations, and each tool's command line once."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[1]
MAE_DEMO = str(ROOT / 'configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py')
A2MIM_DEMO = str(ROOT / 'configs/demo/a2mim_resnet-test-l3_1xb64-coslr-10e_builtin-64px.py')
LINEAR_DEMO = str(ROOT / 'configs/demo/vit-test-p4_linear-1xb128-coslr-20e_builtin-32px.py')


def _run(tool: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / 'tools' / tool), *args],
        cwd=ROOT,
        env={**os.environ, 'PYTHONPATH': str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


# ------------------------------------------------------------------------------------------------------- get_flops


def _vit_block_macs(n: int, d: int, f: int) -> int:
    # qkv + proj (4 D^2) and the MLP (2 D F) per token; q k^T and attn v (2 N^2 D)
    return n * (4 * d * d + 2 * d * f) + 2 * n * n * d


def test_mae_forward_flops_equal_a_hand_count():
    """Demo MAE (D 96, 4 blocks, F 384, p 4 at 32 px: L 64, 16 kept; decoder 64 wide, 2 blocks, F 256): the training
    forward embeds the 16 visible patches, encodes 1 + 16 tokens, and its last decoder block and prediction layer
    run for the 48 masked patches only (keys and values for all 1 + 64)."""
    from mimlab.analysis.complexity import model_complexity
    from mimlab.analysis.flops import mae_train_flops
    from mimlab.apis import build_model_without_pretrained

    cfg = Config.fromfile(MAE_DEMO)
    res = model_complexity(cfg)
    L, kept, masked, d, dd, p_in = 64, 16, 48, 96, 64, 4 * 4 * 3
    last_block = (1 + L) * 2 * dd * dd + masked * (2 * dd * dd + 2 * dd * 4 * dd) + 2 * masked * (1 + L) * dd
    macs = (
        kept * p_in * d  # patch embedding of the visible patches
        + 4 * _vit_block_macs(1 + kept, d, 4 * d)  # encoder
        + (1 + kept) * d * dd  # decoder embedding
        + _vit_block_macs(1 + L, dd, 4 * dd)
        + last_block
        + masked * dd * p_in  # prediction of the masked patches
    )
    assert res['forward_flops'] == 2 * macs == 29_402_880
    hand = mae_train_flops(build_model_without_pretrained(cfg))
    assert res['forward_flops'] == 2 * hand['executed_forward_macs']
    assert res['train_flops'] == hand['train_flops']
    # the plain encoder on all 64 patches, as mmpretrain's get_flops runs it
    assert res['encoder_flops'] == 2 * (L * p_in * d + 4 * _vit_block_macs(1 + L, d, 4 * d))
    assert res['input_shape'] == (3, 32, 32) and res['image_size_from'] == 'config'
    # the fixed sin-cos tables (1 + 64) x 96 and (1 + 64) x 64 are not trained
    assert res['params'] - res['trainable_params'] == (1 + L) * (d + dd)


def test_shape_builds_the_model_for_that_size():
    from mimlab.analysis.complexity import config_at_image_size, model_complexity
    from mimlab.analysis.flops import mae_train_flops
    from mimlab.apis import build_model_without_pretrained

    cfg = Config.fromfile(MAE_DEMO)
    res = model_complexity(cfg, (48, 48))
    hand = mae_train_flops(build_model_without_pretrained(config_at_image_size(cfg, (48, 48))))
    assert res['input_shape'] == (3, 48, 48) and res['image_size_from'] == 'argument'
    assert res['forward_flops'] == 2 * hand['executed_forward_macs'] > model_complexity(cfg)['forward_flops']
    with pytest.raises(ValueError, match='square'):  # SimMIM-style block masks are square
        config_at_image_size(Config.fromfile(A2MIM_DEMO), (64, 96))


def test_classifier_counts_the_inference_forward_and_a_frozen_backbone_has_no_backward():
    """Linear probe: ViT (65 tokens) + BatchNorm neck + 96 -> 10 head; only the head trains."""
    from mimlab.analysis.complexity import model_complexity

    res = model_complexity(Config.fromfile(LINEAR_DEMO))
    forward = 2 * (64 * 48 * 96 + 4 * _vit_block_macs(65, 96, 384) + 96 * 10)
    assert res['kind'] == 'classifier' and res['forward_mode'] == 'predict'
    assert res['forward_flops'] == forward
    assert res['trainable_params'] == 96 * 10 + 10
    assert res['train_flops'] == forward + 2 * 96 * 10  # backward: the head's weight gradient only


def test_get_flops_cli(tmp_path):
    from mimlab.analysis.complexity import model_complexity

    out = tmp_path / 'flops.json'
    proc = _run('analysis_tools/get_flops.py', A2MIM_DEMO, '--shape', '96', '--json', str(out))
    assert proc.returncode == 0, proc.stderr
    assert 'GFLOPs/image' in proc.stdout and 'FLOPs = 2 x MACs' in proc.stdout
    res = json.loads(out.read_text())
    assert res['model'] == 'A2MIM' and res['input_shape'] == [3, 96, 96]
    assert res['forward_flops'] > model_complexity(Config.fromfile(A2MIM_DEMO))['forward_flops'] > 0


# ---------------------------------------------------------------------------------------------------- analyze_logs

# mmengine's scalars.json of an epoch-based run, logger interval 2, 6 iterations per epoch, validation every epoch
TRAIN_TIMES = [0.9, 0.2, 0.3, 0.7, 0.25, 0.35]


def _write_log(path: Path) -> Path:
    lines = []
    for i, t in enumerate(TRAIN_TIMES):
        it = 2 * (i + 1)
        lines.append(
            dict(base_lr=0.1, lr=0.1, data_time=0.01, time=t, loss=2.0 - 0.1 * i, epoch=1 + i // 3, iter=it, step=it)
        )
        if i % 3 == 2:
            lines.append({'accuracy/top1': 10.0 * (1 + i // 3), 'data_time': 0.1, 'time': 0.5, 'step': 1 + i // 3})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(json.dumps(x) + '\n' for x in lines))
    return path


def test_train_time_stats_equal_a_hand_computation(tmp_path):
    from mimlab.analysis.log_analysis import load_json_log, train_time_stats

    log = load_json_log(str(_write_log(tmp_path / 'run/vis_data/scalars.json').parents[2]))  # a work dir
    stats = train_time_stats(log)  # the first logged time of each epoch left out
    kept = [0.2, 0.3, 0.25, 0.35]
    mean = sum(kept) / 4
    assert stats['num_used'] == 4 and stats['mean'] == pytest.approx(mean)
    assert stats['std'] == pytest.approx((sum((t - mean) ** 2 for t in kept) / 4) ** 0.5)
    assert stats['slowest'] == dict(time=0.35, iter=12) and stats['fastest'] == dict(time=0.2, iter=4)
    assert stats['epoch_means'] == pytest.approx({1: 0.25, 2: 0.3})
    assert (stats['slowest_epoch'], stats['fastest_epoch']) == (2, 1)
    everything = train_time_stats(log, include_outliers=True)
    assert everything['mean'] == pytest.approx(sum(TRAIN_TIMES) / 6) and everything['slowest']['iter'] == 2


def test_curves_on_iteration_and_epoch_axes(tmp_path):
    from mimlab.analysis.log_analysis import LogFormatError, curve, load_json_log, moving_average

    log = load_json_log(str(_write_log(tmp_path / 'scalars.json')))
    assert curve(log, 'loss') == ([2, 4, 6, 8, 10, 12], pytest.approx([2.0, 1.9, 1.8, 1.7, 1.6, 1.5]), 'train')
    xs, _, _ = curve(log, 'loss', 'epoch')
    assert xs == pytest.approx([1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2])
    assert curve(log, 'accuracy/top1') == ([6.0, 12.0], [10.0, 20.0], 'val')  # epochs 1, 2 at iterations 6, 12
    assert curve(log, 'accuracy/top1', 'epoch')[0] == [1, 2]
    assert moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    iter_based = tmp_path / 'iter_based.json'
    iter_based.write_text('{"loss": 1.0, "time": 0.1, "iter": 10, "step": 10}\n')
    with pytest.raises(LogFormatError, match='iteration-based'):
        curve(load_json_log(str(iter_based)), 'loss', 'epoch')


def test_a_malformed_line_is_named_by_file_and_line(tmp_path):
    from mimlab.analysis.log_analysis import LogFormatError, load_json_log

    path = _write_log(tmp_path / 'scalars.json')
    lines = path.read_text().splitlines()
    lines.insert(2, '{"loss": 1.0, "iter"')
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(LogFormatError, match=f'{path}:3: not a JSON line'):
        load_json_log(str(path))


def test_analyze_logs_cli(tmp_path):
    from PIL import Image

    log = str(_write_log(tmp_path / '20240101_000000/vis_data/scalars.json'))
    png = tmp_path / 'curve.png'
    proc = _run(
        'analysis_tools/analyze_logs.py', 'plot_curve', log, '--keys', 'loss', 'accuracy/top1', '--out', str(png)
    )
    assert proc.returncode == 0, proc.stderr
    with Image.open(png) as img:
        assert img.format == 'PNG' and img.size == (1200, 700)  # 12 x 7 in at 100 dpi

    proc = _run('analysis_tools/analyze_logs.py', 'plot_curve', log, '--keys', 'accuracy', '--out', str(png))
    assert proc.returncode != 0
    assert "key 'accuracy' is not in" in proc.stderr and 'accuracy/top1' in proc.stderr  # lists the keys there are


def test_cal_train_time_prints_the_statistics(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('analyze_logs', ROOT / 'tools/analysis_tools/analyze_logs.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main(['cal_train_time', str(_write_log(tmp_path / 'scalars.json'))])
    out = capsys.readouterr().out
    assert 'logged iteration times  4 used of 6' in out
    assert 'average iter time       0.2750 s/iter' in out
    assert 'slowest                 0.3500 s/iter (logged at iter 12)' in out
    assert 'fastest epoch           1, average 0.2500 s/iter' in out


# ------------------------------------------------------------------------------------------- print_config, env


def test_print_config_shows_the_merged_config_with_overrides():
    proc = _run(
        'misc/print_config.py', MAE_DEMO, '--cfg-options', 'train_cfg.max_epochs=3', 'model.backbone.mask_ratio=0.6'
    )
    assert proc.returncode == 0, proc.stderr
    cfg = Config.fromstring(proc.stdout, '.py')  # the output is itself a config file
    assert cfg.train_cfg.max_epochs == 3 and cfg.model.backbone.mask_ratio == 0.6
    assert cfg.default_hooks.nan_guard.type == 'NonFiniteGuardHook'  # from the _base_ file


def test_collect_env_lists_mimlab():
    import mimlab
    from mimlab.utils import collect_env

    assert callable(collect_env)
    proc = _run('misc/collect_env.py', env=dict(MIMLAB_RESAMPLE_SIMD='avx2'))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith(f'mimlab: {mimlab.__version__}') for line in lines)
    assert 'MIMLAB_RESAMPLE_SIMD: avx2' in lines
    try:
        from mimlab import _jpeg  # noqa: F401
    except ImportError:
        pass
    else:  # the cap is obeyed (a CPU without AVX2 gets the portable kernels)
        kernels = [line.split(': ')[1] for line in lines if line.startswith('resize kernels (mimlab._jpeg)')]
        assert kernels in (['avx2'], ['portable'])
    for key in ('PyTorch', 'MMEngine', 'MMCV', 'timm', 'Pillow', 'mimlab._jpeg'):
        assert any(line.startswith(f'{key}: ') for line in lines), key
