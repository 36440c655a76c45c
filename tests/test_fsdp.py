"""FSDP2 sharding (``model_wrapper_cfg=dict(type='FullyShardWrapper')``), run for real: two CPU processes over gloo,
started by ``tools/dist_train.sh`` (torchrun + ``tools/train.py``), against the same runs under DDP.

Each run is the demo recipe shrunk to 2 epochs x 4 iterations per rank (batch 16 per rank), with gradient
accumulation over 2 iterations and ``clip_grad.max_norm=0.05`` (the gradient norms are ~4-7, so every update is
clipped), logging every iteration, no DataLoader workers (their RNG is not part of an exact resume yet).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config

from mimlab.utils import load_checkpoint_weights_only

from .test_train_tools import free_port, scalars

ROOT = Path(__file__).resolve().parents[1]
MAE = 'configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py'
MAE_FSDP = 'configs/demo/mae_vit-test-p4_2xb64-fsdp-coslr-30e_builtin-32px.py'
FT = 'configs/demo/vit-test-p4_ft-1xb128-coslr-10e_builtin-32px.py'
MAX_NORM = 0.05
TINY = [
    'train_dataloader.batch_size=16',
    'train_dataloader.dataset.num_samples=128',
    'train_dataloader.num_workers=0',
    'train_cfg.max_epochs=2',
    'optim_wrapper.accumulative_counts=2',
    f'optim_wrapper.clip_grad.max_norm={MAX_NORM}',
    'default_hooks.logger.interval=1',
    'randomness.seed=0',
]
FSDP = ['model_wrapper_cfg.type=FullyShardWrapper']


def dist_train(config, work_dir, *options, resume=None, expect_failure=False):
    """``tools/dist_train.sh CONFIG 2`` with the tiny settings (+ ``options``); returns the work dir.
    ``resume``: a checkpoint, or ``'auto'`` for a bare ``--resume``."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    extra = [] if resume is None else ['--resume'] if resume == 'auto' else ['--resume', str(resume)]
    args = ['bash', 'tools/dist_train.sh', config, '2', '--work-dir', str(work_dir), *extra]
    args += ['--cfg-options', *TINY, *options]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    ok = proc.returncode != 0 if expect_failure else proc.returncode == 0
    assert ok, f'{args} gave {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'
    return Path(work_dir)


def merged(work_dir: Path, name: str) -> dict:
    """The sharded checkpoint ``name`` merged into one ordinary checkpoint by the tool (in its own process)."""
    out = work_dir / f'{name}.merged.pth'
    if not out.exists():
        subprocess.run(
            [sys.executable, 'tools/model_converters/merge_sharded_checkpoint.py', str(work_dir / name), str(out)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return load_checkpoint_weights_only(str(out))


def assert_same_weights(ours: dict, ref: dict, rtol=1e-5):
    """Every tensor within ``rtol`` of the reference, relative to the tensor's largest value.

    The key bias (the middle third of ``qkv.bias``) is the exception, checked to stay ~0 instead: softmax over keys
    ignores it, so its exact gradient is 0 and what it gets is rounding noise, which AdamW's normalisation turns
    into lr-sized steps in random directions (values ~1e-7, different under any change of summation order).
    """
    assert ours.keys() == ref.keys()
    for key, value in ref.items():
        mine = ours[key]
        if key.endswith('qkv.bias'):
            d = value.numel() // 3
            assert mine[d : 2 * d].abs().max() < 1e-5 and value[d : 2 * d].abs().max() < 1e-5, key
            keep = torch.ones_like(value, dtype=torch.bool)
            keep[d : 2 * d] = False
            mine, value = mine[keep], value[keep]
        scale = value.abs().max().clamp_min(1e-12)
        assert ((mine - value).abs().max() / scale) <= rtol, f'{key}: {((mine - value).abs().max() / scale):.3g}'


def assert_same_log(ours: list, ref: list, rtol=1e-5):
    assert [r['step'] for r in ours] == [r['step'] for r in ref]
    for a, b in zip(ours, ref, strict=True):
        assert a['lr'] == b['lr'], (a, b)
        for key in ('loss', 'grad_norm'):
            if key in b:
                assert abs(a[key] - b[key]) <= rtol * abs(b[key]), (key, a, b)


def _rows(work_dir) -> list[dict]:
    import json

    files = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]


@pytest.fixture(scope='module')
def mae_runs(tmp_path_factory):
    """The tiny MAE trained for 2 epochs under DDP and under FSDP2."""
    ddp = dist_train(MAE, tmp_path_factory.mktemp('mae_ddp'))
    fsdp = dist_train(MAE_FSDP, tmp_path_factory.mktemp('mae_fsdp'))
    return ddp, fsdp


def test_fsdp_mae_equals_ddp_with_clipping_and_accumulation(mae_runs):
    ddp, fsdp = mae_runs
    ddp_log, fsdp_log = scalars(ddp), scalars(fsdp)
    assert [r['step'] for r in fsdp_log] == list(range(1, 9))
    # the norm is computed over both ranks' shards: equal to DDP's full-gradient norm, and large enough that
    # clipping to 0.05 acts on every update
    assert all(r['grad_norm'] > 10 * MAX_NORM for r in fsdp_log if 'grad_norm' in r)
    assert_same_log(fsdp_log, ddp_log)
    ours, ref = merged(fsdp, 'epoch_2.pth'), load_checkpoint_weights_only(str(ddp / 'epoch_2.pth'))
    assert_same_weights(ours['state_dict'], ref['state_dict'])
    # AdamW's moments too, numbered as DDP saves them, with the layer-decay groups' extra keys
    assert ours['optimizer']['state'].keys() == ref['optimizer']['state'].keys()
    for i, state in ref['optimizer']['state'].items():
        for key in ('exp_avg', 'exp_avg_sq'):
            diff = (ours['optimizer']['state'][i][key] - state[key]).abs().max()
            assert diff <= 1e-5 * state[key].abs().max(), (i, key)
    assert [g['param_names'] for g in ours['optimizer']['param_groups']] == [
        g['param_names'] for g in ref['optimizer']['param_groups']
    ]


def test_sharded_checkpoint_is_written_by_each_rank(mae_runs):
    _, fsdp = mae_runs
    meta = load_checkpoint_weights_only(str(fsdp / 'epoch_2.pth'))
    assert meta['state_dict'] == {} and 'optimizer' not in meta
    assert meta['sharded_state']['dir'] == 'epoch_2.pth.dcp' and meta['sharded_state']['world_size'] == 2
    assert meta['meta']['iter'] == 8 and len(meta['rng_state']) == 2
    shards = sorted(p.name for p in (fsdp / 'epoch_2.pth.dcp').iterdir())
    assert shards == ['.metadata', '__0_0.distcp', '__1_0.distcp']
    assert not list(fsdp.glob('*.partial'))
    assert (fsdp / 'last_checkpoint').read_text().strip().endswith('epoch_2.pth')


@pytest.mark.parametrize(
    'saved_by, resumed_by',
    [('fsdp', 'fsdp'), ('ddp', 'fsdp'), ('fsdp', 'ddp')],
)
def test_resume_across_sharding(mae_runs, tmp_path, saved_by, resumed_by):
    """Resume from the epoch-1 checkpoint: iteration 5 onwards, with the same lr, losses and final weights as the
    uninterrupted run."""
    ddp, fsdp = mae_runs
    source = {'ddp': ddp, 'fsdp': fsdp}[saved_by]
    config = {'ddp': MAE, 'fsdp': MAE_FSDP}[resumed_by]
    work = dist_train(config, tmp_path, resume=source / 'epoch_1.pth')
    log = scalars(work)
    assert [r['step'] for r in log] == [5, 6, 7, 8]
    assert_same_log(log, scalars(fsdp)[4:])
    final = (
        merged(work, 'epoch_2.pth') if resumed_by == 'fsdp' else load_checkpoint_weights_only(str(work / 'epoch_2.pth'))
    )
    assert_same_weights(final['state_dict'], merged(fsdp, 'epoch_2.pth')['state_dict'])


def test_killed_sharded_run_resumes_where_its_checkpoint_ends(mae_runs, tmp_path):
    """Both processes SIGKILLed before iteration 7; a bare ``--resume`` continues from the sharded epoch-1
    checkpoint (iteration 5) and ends with the uninterrupted run's weights."""
    _, fsdp = mae_runs
    killed = tmp_path / 'killed.py'
    killed.write_text(
        f"_base_ = '{ROOT / MAE_FSDP}'\n"
        "custom_imports = dict(imports=['tests.fault_hooks'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='KillAtIterHook', iteration=7)]\n"
    )
    dist_train(str(killed), tmp_path, expect_failure=True)
    assert (tmp_path / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')
    assert not (tmp_path / 'epoch_2.pth').exists()
    (tmp_path / 'iter_6.pth.dcp.partial').mkdir()  # as a kill during a sharded save leaves it
    dist_train(MAE_FSDP, tmp_path, 'default_hooks.checkpoint.max_keep_ckpts=1', resume='auto')
    assert not (tmp_path / 'iter_6.pth.dcp.partial').exists()
    # pruned once epoch 2 was complete: the checkpoint and its shards
    assert not (tmp_path / 'epoch_1.pth').exists() and not (tmp_path / 'epoch_1.pth.dcp').exists()
    log = [r for r in scalars(tmp_path) if r['step'] >= 5][-4:]
    assert [r['step'] for r in log] == [5, 6, 7, 8]
    assert_same_log(log, scalars(fsdp)[4:])
    assert_same_weights(merged(tmp_path, 'epoch_2.pth')['state_dict'], merged(fsdp, 'epoch_2.pth')['state_dict'])


def test_guard_rolls_a_sharded_model_back_to_its_sharded_checkpoint(tmp_path):
    """NaN weights before iteration 6: the updates at iterations 6 and 8 (accumulation over 2) are skipped, and the
    second one in a row rolls model and AdamW state back to the sharded epoch-1 checkpoint."""
    poisoned = tmp_path / 'poisoned.py'
    poisoned.write_text(
        f"_base_ = '{ROOT / MAE_FSDP}'\n"
        "custom_imports = dict(imports=['tests.fault_hooks'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='PoisonWeightsAtIterHook', iteration=6)]\n"
        "default_hooks = dict(nan_guard=dict(type='NonFiniteGuardHook', max_consecutive=2, on_repeated='rollback'))\n"
    )
    work = dist_train(str(poisoned), tmp_path / 'work')
    logs = '\n'.join(p.read_text() for p in work.glob('*/*.log'))
    assert 'rolled back model and optimizer to' in logs and 'epoch_1.pth' in logs
    rolled = merged(work, 'epoch_2.pth')
    start = merged(work, 'epoch_1.pth')
    assert_same_weights(rolled['state_dict'], start['state_dict'], rtol=0)
    for i, state in start['optimizer']['state'].items():
        assert torch.equal(rolled['optimizer']['state'][i]['exp_avg'], state['exp_avg'])


def test_merged_checkpoint_loads_strictly_and_converts_to_timm(mae_runs, tmp_path):
    from mimlab.apis import register_all_modules
    from mimlab.registry import MODELS

    register_all_modules()
    _, fsdp = mae_runs
    state = merged(fsdp, 'epoch_2.pth')['state_dict']
    model = MODELS.build(Config.fromfile(ROOT / MAE).model)
    model.load_state_dict(state, strict=True)
    subprocess.run(
        [sys.executable, 'tools/model_converters/extract_backbone_weights.py', str(fsdp / 'epoch_2.pth.merged.pth')]
        + [str(tmp_path / 'backbone.pth')],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    backbone = torch.load(tmp_path / 'backbone.pth', weights_only=True)['state_dict']
    model.backbone.load_state_dict(backbone, strict=True)
    subprocess.run(
        [
            sys.executable,
            'tools/model_converters/mmcls2timm.py',
            str(fsdp / 'epoch_2.pth.merged.pth'),
            str(tmp_path / 't.pth'),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    from timm.models.vision_transformer import VisionTransformer

    # the demo encoder's shape (mmcls2timm --check infers heads only for the standard widths)
    timm_vit = VisionTransformer(img_size=32, patch_size=4, embed_dim=96, depth=4, num_heads=3, num_classes=0)
    timm_vit.load_state_dict(torch.load(tmp_path / 't.pth', weights_only=True)['model'], strict=True)


def test_fsdp_finetune_with_activation_checkpointing_and_ema_equals_ddp(mae_runs, tmp_path):
    """Fine-tuning from the merged sharded MAE checkpoint (layer decay, drop path, Mixup/CutMix, RandAugment), with
    activation checkpointing applied by the wrapper and the recipe's ``EMAHook`` (with openmixup's warm-up, which
    the sharded run turns into ``ShardedEMAHook``), validated on the averaged weights at the end, and resumed."""
    _, fsdp = mae_runs
    pretrained = fsdp / 'epoch_2.pth.merged.pth'
    merged(fsdp, 'epoch_2.pth')
    options = [
        f'model.backbone.init_cfg.checkpoint={pretrained}',
        # a large momentum, so that the average is far from the live weights after 8 updates
        'custom_hooks.0.ema_type=WarmupExponentialMovingAverage',
        'custom_hooks.0.momentum=0.3',
        'custom_hooks.0.warmup_iters=4',
        'val_dataloader.dataset.num_samples=64',
        'val_dataloader.num_workers=0',
        'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=2',
    ]
    ddp = dist_train(FT, tmp_path / 'ddp', *options)
    sharded_opts = [*options, *FSDP, 'model_wrapper_cfg.activation_checkpointing=True']
    sharded = dist_train(FT, tmp_path / 'fsdp', *sharded_opts)
    assert_same_log(scalars(sharded), scalars(ddp))
    ours, ref = merged(sharded, 'epoch_2.pth'), load_checkpoint_weights_only(str(ddp / 'epoch_2.pth'))
    # as EMAHook saves them: state_dict the average, ema_state_dict the live weights (module.-prefixed) and steps
    assert_same_weights(ours['state_dict'], ref['state_dict'])
    assert ours['ema_state_dict'].keys() == ref['ema_state_dict'].keys()
    assert ours['ema_state_dict'].pop('steps') == ref['ema_state_dict'].pop('steps') == 8
    assert_same_weights(ours['ema_state_dict'], ref['ema_state_dict'])
    moved = [(ref['state_dict'][k[7:]] - v).abs().max() / v.abs().max() for k, v in ref['ema_state_dict'].items()]
    assert max(moved) > 1e-3  # the average is not the live weights
    val, val_ddp = ([r for r in _rows(tmp_path / run) if 'accuracy/top1' in r] for run in ('fsdp', 'ddp'))
    assert val, 'no validation at the end of the sharded run'
    accuracy = ('step', 'accuracy/top1', 'accuracy/top5')
    assert [[r[k] for k in accuracy] for r in val] == [[r[k] for k in accuracy] for r in val_ddp]  # averaged weights
    # resumed from epoch 1 (a sharded checkpoint under sharding and under DDP, a DDP one under sharding): the
    # average continues (its steps too) and ends as the uninterrupted run's
    for i, (source, resumed_opts) in enumerate(((sharded, sharded_opts), (sharded, options), (ddp, sharded_opts))):
        work = dist_train(FT, tmp_path / f'resumed{i}', *resumed_opts, resume=source / 'epoch_1.pth')
        end = (
            merged(work, 'epoch_2.pth')
            if resumed_opts is sharded_opts
            else load_checkpoint_weights_only(str(work / 'epoch_2.pth'))
        )
        assert_same_weights(end['state_dict'], ours['state_dict'])
        assert end['ema_state_dict'].pop('steps') == 8
        assert_same_weights(end['ema_state_dict'], ours['ema_state_dict'])
    # tools/dist_test.sh evaluates the sharded checkpoint under sharding: the accuracy of the run's validation
    test = [*options[:4], *[o.replace('val_', 'test_') for o in options[4:6]], *FSDP]
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    args = ['bash', 'tools/dist_test.sh', FT, str(sharded / 'epoch_2.pth'), '2', '--work-dir', str(tmp_path / 'test')]
    proc = subprocess.run([*args, '--cfg-options', *test], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'accuracy/top1: {val[-1]["accuracy/top1"]:.4f}' in proc.stdout + proc.stderr


def _ema_view_rank(rank: int, port: int) -> None:
    from types import SimpleNamespace

    from mimlab.engine.parallel import FullyShardWrapper, ShardedEMAHook

    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3))
    wrapper = FullyShardWrapper(model, block_types=['Linear'])  # two units and the root
    hook = ShardedEMAHook(momentum=0.5)
    runner = SimpleNamespace(model=wrapper, iter=0, epoch=0)
    hook.before_run(runner)
    view = hook.src_model
    assert hook.src_model is view  # handed out again, not rebuilt
    shard = model[0].weight.to_local()
    assert view.get_submodule('0').weight.data_ptr() == shard.data_ptr()  # the live shard, not a copy
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(4, 6)).sum().backward()
    optimizer.step()
    model.eval()
    model(torch.randn(4, 6))  # the root stays gathered after a forward without backward
    assert hook.src_model is view  # resharded, same shards
    before = view.get_submodule('0').weight.clone()
    hook.after_train_iter(runner, 0)
    averaged = hook.ema_model.module.get_submodule('0').weight
    assert torch.equal(averaged, before)  # the first update copies the (stepped) shard in
    model[1].running_mean = torch.full((8,), 7.0)  # a replaced buffer: the old view is stale
    fresh = hook.src_model
    assert fresh is not view and torch.equal(fresh.get_submodule('1').running_mean, torch.full((8,), 7.0))
    assert hook.src_model is fresh
    dist.destroy_process_group()


def test_sharded_ema_hands_out_one_view_while_the_shards_stay(tmp_path):
    """``ShardedEMAHook.src_model`` (used every iteration) builds the local view once and rebuilds it only when the
    local tensors move; the FSDP2 = DDP equality of the EMA runs is the test above."""
    mp.spawn(_ema_view_rank, args=(free_port(),), nprocs=2, join=True)


# ------------------------------------------------------------------------------ bytes held per rank


def _bytes_rank(rank: int, port: int, out: str) -> None:
    from mmengine.config import Config

    from mimlab.apis import register_all_modules
    from mimlab.engine.parallel import FullyShardWrapper, local_state_bytes
    from mimlab.registry import MODELS

    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    register_all_modules()
    result = {}
    for kind in ('ddp', 'fsdp', 'fsdp-bf16'):
        torch.manual_seed(0)
        model = MODELS.build(Config.fromfile(ROOT / MAE).model)
        if kind == 'ddp':
            model.init_weights()
            wrapped = torch.nn.parallel.DistributedDataParallel(model)
        else:
            bf16 = dict(param_dtype='bfloat16', reduce_dtype='float32') if kind == 'fsdp-bf16' else None
            wrapped = FullyShardWrapper(model, mixed_precision=bf16)
        optimizer = torch.optim.AdamW(wrapped.parameters(), lr=1e-4)
        torch.manual_seed(1)
        loss = wrapped(torch.randn(4, 3, 32, 32), mode='loss')['loss']
        loss.backward()
        optimizer.step()
        result[kind] = local_state_bytes(wrapped, optimizer)
        result[kind]['loss'] = loss.item()
        result[kind]['dtypes'] = sorted({str(p.dtype) for p in wrapped.parameters()} | {str(loss.dtype)})
        result[kind]['grad_dtypes'] = sorted({str(p.grad.dtype) for p in wrapped.parameters() if p.grad is not None})
    if rank == 0:
        torch.save(result, out)
    dist.destroy_process_group()


def test_sharded_bytes_per_rank_are_half_of_ddp(tmp_path):
    out = tmp_path / 'bytes.pth'
    mp.spawn(_bytes_rank, args=(free_port(), str(out)), nprocs=2, join=True)
    result = torch.load(out, weights_only=True)
    ddp, fsdp = result['ddp'], result['fsdp']
    # fp32 weights, and gradients and two AdamW moments of the trained ones (MAE's sin-cos tables are frozen)
    assert ddp['grads'] < ddp['params'] < 1.02 * ddp['grads'] and abs(ddp['optimizer'] - 2 * ddp['grads']) < 1000
    # shards are padded to a multiple of the world size along dim 0: a little over half
    assert 0.5 <= fsdp['total'] / ddp['total'] < 0.51, result
    assert fsdp['loss'] == pytest.approx(ddp['loss'], rel=1e-6)
    # bf16 compute, fp32 master weights, gradients (reduced in fp32) and optimizer state: the same bytes held
    bf16 = result['fsdp-bf16']
    assert bf16['total'] == fsdp['total'] and bf16['grad_dtypes'] == ['torch.float32']
    assert bf16['dtypes'] == ['torch.float32']  # the sharded master weights
    assert bf16['loss'] == pytest.approx(ddp['loss'], rel=2e-2) and bf16['loss'] != fsdp['loss']  # a bf16 forward


# ------------------------------------------------------------------------------ recipes and precision

FSDP_RECIPES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*fsdp*.py'))


def test_fsdp_recipes_exist():
    names = {Path(c).name for c in FSDP_RECIPES}
    assert names >= {
        'mae_vit-large-p16_8xb512-amp-fsdp-coslr-1600e_in1k.py',
        'mae_vit-huge-p14_8xb512-amp-fsdp-coslr-1600e_in1k.py',
        'vit-large-p16_8xb128-fsdp-coslr-50e_in1k.py',
        'vit-huge-p14_8xb128-fsdp-coslr-50e_in1k.py',
        'mixmim_mixmim-large_16xb128-amp-fsdp-coslr-600e_in1k.py',
        'mixmim_mixmim-huge_16xb128-amp-fsdp-coslr-600e_in1k.py',
        'simmim_swin-large-w12_16xb128-amp-fsdp-coslr-800e_in1k-192px.py',
        'mae_vit-test-p4_2xb64-fsdp-coslr-30e_builtin-32px.py',
    }


@pytest.mark.parametrize('config', FSDP_RECIPES)
def test_fsdp_recipes_make_every_block_a_unit(config):
    """Each sharded recipe names the wrapper, and its model (tiny) has one FSDP unit per encoder and decoder block."""
    from mimlab.apis import register_all_modules
    from mimlab.engine.parallel import find_blocks
    from mimlab.registry import MODELS

    from .test_configs import _tiny_model_cfg

    register_all_modules()
    cfg = Config.fromfile(ROOT / config)
    assert cfg.model_wrapper_cfg.type == 'FullyShardWrapper'
    model = MODELS.build(_tiny_model_cfg(cfg) if 'demo' not in config else cfg.model)
    names = [name for name, _ in find_blocks(model)]
    backbone = model.backbone
    expected = (
        len(backbone.layers)
        if hasattr(backbone, 'layers') and not hasattr(backbone.layers[0], 'blocks')
        else sum(len(stage.blocks) for stage in getattr(backbone, 'stages', getattr(backbone, 'layers', [])))
    )
    decoder = getattr(getattr(model, 'neck', None), 'decoder_blocks', [])
    assert len(names) == expected + len(decoder) > 0, names
    assert all(n.startswith(('backbone.', 'neck.decoder_blocks.')) for n in names)


def test_amp_under_sharding_is_the_bf16_mixed_precision_policy(monkeypatch):
    from .test_train_tools import train_cfg

    recipe = 'configs/mae/mae_vit-huge-p14_8xb512-amp-fsdp-coslr-1600e_in1k.py'
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: True)
    cfg = train_cfg(recipe)
    assert cfg.optim_wrapper.type == 'OptimWrapper' and 'loss_scale' not in cfg.optim_wrapper
    assert cfg.model_wrapper_cfg.mixed_precision == dict(param_dtype='bfloat16', reduce_dtype='float32')
    with pytest.raises(ValueError, match='fp16 mixed precision with FullyShardWrapper'):
        train_cfg(recipe, '--cfg-options', 'optim_wrapper.dtype=float16')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.warns(UserWarning, match='needs a GPU'):  # CPU: fp32, as every AMP recipe
        cfg = train_cfg(recipe)
    assert cfg.optim_wrapper.type == 'OptimWrapper' and 'mixed_precision' not in cfg.model_wrapper_cfg


def test_benchmark_reports_every_rank_of_a_sharded_run(tmp_path):
    out = tmp_path / 'bench.json'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    args = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', str(free_port())]
    args += ['tools/analysis_tools/benchmark.py', MAE_FSDP, '--launcher', 'pytorch', '--steps', '2', '--warmup', '1']
    args += ['--batch-size', '4', '--json', str(out)]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = __import__('json').loads(out.read_text())
    assert (result['wrapper'], result['world_size']) == ('FullyShardWrapper', 2)
    assert len(result['rank_step_time']) == len(result['rank_peak_memory_mb']) == 2
    # between steps each rank holds its shard of the weights (4 B) and of AdamW's moments (8 B): the demo's
    # 0.57 M parameters x 12 B / 2 ranks, plus padding and Adam's step counters
    for held in result['rank_state_mb']:
        assert 3.2 < held < 3.35, result['rank_state_mb']
    assert 'rank 1: step' in proc.stdout


def test_knn_hook_gives_the_ddp_accuracy_under_sharding(tmp_path):
    """``KNNHook`` calls ``extract_feat`` outside ``forward``: every rank gathers the root's weights for it."""
    config = tmp_path / 'knn.py'
    config.write_text(
        f"_base_ = '{ROOT / MAE}'\n"
        "loader = dict(batch_size=64, num_workers=0, sampler=dict(type='ExactResumeSampler', shuffle=False),\n"
        "              collate_fn=dict(type='default_collate'))\n"
        "pipe = [dict(type='ResizeEdge', scale=32), dict(type='PackInputs')]\n"
        "data = dict(type='BuiltinDataset', img_size=48, pipeline=pipe)\n"
        "custom_hooks = [dict(type='KNNHook', interval=1, k=5,\n"
        "    bank_dataloader=dict(**loader, dataset=dict(**data, split='train', num_samples=128)),\n"
        "    query_dataloader=dict(**loader, dataset=dict(**data, split='val', num_samples=64)))]\n"
    )
    reports = []
    for name, options in (('ddp', []), ('fsdp', FSDP)):
        work = dist_train(str(config), tmp_path / name, *options)
        log = '\n'.join(p.read_text() for p in work.glob('*/*.log'))
        reports.append([line.split('INFO - ')[-1] for line in log.splitlines() if 'knn/top1=' in line])
    assert len(reports[0]) == 2 and reports[1] == reports[0]
