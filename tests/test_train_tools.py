"""tools/train.py, tools/test.py and the launchers, run as real processes on CPU."""

import importlib.util
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mimlab.engine.launch import merge_test_args, merge_train_args, setup_distributed

ROOT = Path(__file__).resolve().parents[1]
DEMO = 'configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py'
LINEAR = 'configs/demo/vit-test-p4_linear-1xb128-coslr-20e_builtin-32px.py'
KNN = 'configs/demo/mae_vit-test-p4_knn_builtin-32px.py'
SMALL = ['train_dataloader.num_workers=0', 'default_hooks.logger.interval=1']


def free_port() -> int:
    """A TCP port nobody listens on now, so that concurrent test runs do not share a rendezvous."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def train_args(*argv) -> Namespace:
    """``tools/train.py``'s own argument parser applied to ``argv``."""
    spec = importlib.util.spec_from_file_location('train_tool', ROOT / 'tools/train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse_args([str(a) for a in argv])


def train_cfg(*argv) -> Config:
    args = train_args(*argv)
    return merge_train_args(Config.fromfile(ROOT / args.config), args)


def run(args, check=True, **kw):
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return proc


def train(work_dir, *options, extra=()):
    return run(
        [sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work_dir), *extra, '--cfg-options', *SMALL, *options]
    )


def scalars(work_dir) -> list[dict]:
    files = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    assert files, f'no scalars.json under {work_dir}'
    rows = []
    for f in files:
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return [r for r in rows if 'loss' in r]


@pytest.fixture(scope='module')
def full_run(tmp_path_factory):
    work = tmp_path_factory.mktemp('full')
    train(work, 'train_dataloader.dataset.num_samples=256', 'train_cfg.max_epochs=3')
    return work


def test_demo_loss_falls(tmp_path):
    train(tmp_path, 'train_dataloader.dataset.num_samples=512', 'train_cfg.max_epochs=3')
    losses = [r['loss'] for r in scalars(tmp_path)]
    assert len(losses) == 24
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4, losses


def test_resume_continues_at_the_right_iteration_and_lr(full_run, tmp_path):
    shutil.copy(full_run / 'epoch_1.pth', tmp_path / 'epoch_1.pth')
    train(
        tmp_path,
        'train_dataloader.dataset.num_samples=256',
        'train_cfg.max_epochs=3',
        extra=['--resume', str(tmp_path / 'epoch_1.pth')],
    )
    full = {r['iter']: r['lr'] for r in scalars(full_run)}
    resumed = {r['iter']: r['lr'] for r in scalars(tmp_path)}
    assert sorted(resumed) == list(range(5, 13))  # 4 iterations per epoch; epochs 2 and 3
    for it, lr in resumed.items():
        assert lr == pytest.approx(full[it], rel=1e-9), it
    assert (tmp_path / 'epoch_3.pth').exists()


def test_resume_without_path_picks_the_latest(full_run, tmp_path):
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        shutil.copy(full_run / name, tmp_path / name)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    train(tmp_path, 'train_dataloader.dataset.num_samples=256', 'train_cfg.max_epochs=3', extra=['--resume'])
    assert sorted(r['iter'] for r in scalars(tmp_path)) == [9, 10, 11, 12]


_EXACTNESS_PROBE = """
import sys, torch
import mimlab.utils.checkpoint as ck
path = sys.argv[1]
types = ck.checkpoint_safe_globals()
torch.serialization.clear_safe_globals()
print('unsafe', sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path)))
for i in range(-1, len(types)):
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals([t for j, t in enumerate(types) if j != i])
    try:
        torch.load(path, weights_only=True)
        print('loads', i)
    except Exception:
        print('fails', i)
"""


def test_checkpoint_needs_exactly_the_allow_listed_types(full_run):
    """The full allow-list loads a mimlab checkpoint weights-only, and dropping any one type breaks it."""
    from mimlab.utils.checkpoint import checkpoint_safe_globals

    out = run([sys.executable, '-c', _EXACTNESS_PROBE, str(full_run / 'epoch_2.pth')]).stdout.splitlines()
    allowed = {f'{g.__module__}.{g.__qualname__}' for g in checkpoint_safe_globals()}
    unsafe = set(eval(out[0][len('unsafe ') :]))  # noqa: S307 - our own probe's repr of a list of names
    assert unsafe <= allowed, unsafe - allowed
    assert out[1] == 'loads -1'
    assert out[2:] == [f'fails {i}' for i in range(len(allowed))]


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f'touch {self.path}',))


def test_crafted_checkpoint_is_refused_and_runs_no_code(tmp_path):
    from mimlab.utils import load_checkpoint_weights_only

    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _Evil(marker)}, evil, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(RuntimeError, match='evil.pth'):
        load_checkpoint_weights_only(str(evil))
    with pytest.raises(pickle.UnpicklingError):
        torch.load(evil)  # mmengine's resume path: plain torch.load, weights-only by default
    assert not marker.exists()


def test_dist_train_two_processes_on_cpu(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [
            'bash',
            'tools/dist_train.sh',
            DEMO,
            '2',
            '--work-dir',
            str(tmp_path),
            '--cfg-options',
            *SMALL,
            'train_dataloader.dataset.num_samples=128',
            'train_cfg.max_epochs=2',
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert 'Distributed launcher: pytorch' in out and 'Distributed training: True' in out
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_1.pth', 'epoch_2.pth']
    # 128 images / (2 ranks x 64) = 1 iteration per epoch on each rank; only rank 0 logs
    assert [r['iter'] for r in scalars(tmp_path)] == [1, 2]


def test_unknown_type_names_it(tmp_path):
    proc = run(
        [
            sys.executable,
            'tools/train.py',
            DEMO,
            '--work-dir',
            str(tmp_path),
            '--cfg-options',
            'model.neck.type=NoSuchDecoder',
        ],
        check=False,
    )
    assert proc.returncode != 0 and 'NoSuchDecoder' in proc.stderr


def test_missing_data_root_names_the_path(tmp_path):
    proc = run(
        [
            sys.executable,
            'tools/train.py',
            'configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
            '--work-dir',
            str(tmp_path),
            '--cfg-options',
            f'train_dataloader.dataset.data_root={tmp_path}/nope',
            'train_dataloader.num_workers=0',
            'model.backbone.arch=test',
            'resume=False',
        ],
        check=False,
    )
    assert proc.returncode != 0 and f'{tmp_path}/nope' in proc.stderr


def test_test_py_refuses_a_pretraining_checkpoint(full_run, tmp_path):
    proc = run(
        [
            sys.executable,
            'tools/test.py',
            'configs/mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py',
            str(full_run / 'epoch_3.pth'),
            '--work-dir',
            str(tmp_path),
        ],
        check=False,
    )
    assert proc.returncode != 0 and 'no head.* weights' in proc.stderr


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    """A write killed half-way leaves the previous checkpoint intact and no partial file behind."""
    from mmengine.fileio.backends.local_backend import LocalBackend

    import mimlab.utils  # noqa: F401 - installs the atomic backend

    target = tmp_path / 'epoch_1.pth'
    LocalBackend().put(b'old checkpoint', target)
    real_fsync = os.fsync

    def killed(fd):  # the process dies after part of the data reached the temporary file
        raise KeyboardInterrupt('killed while saving')

    monkeypatch.setattr(os, 'fsync', killed)
    with pytest.raises(KeyboardInterrupt):
        LocalBackend().put(b'new checkpoint, only partly written', target)
    monkeypatch.setattr(os, 'fsync', real_fsync)
    assert target.read_bytes() == b'old checkpoint'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth']
    LocalBackend().put_text('new', tmp_path / 'last_checkpoint')
    assert (tmp_path / 'last_checkpoint').read_text() == 'new'


def test_knn_hook_reports_accuracy_during_pretraining(tmp_path):
    cfg = tmp_path / 'knn_hook.py'
    cfg.write_text(
        f"_base_ = '{ROOT / DEMO}'\n"
        "loader = dict(batch_size=64, num_workers=0, sampler=dict(type='ExactResumeSampler', shuffle=False),\n"
        "              collate_fn=dict(type='default_collate'))\n"
        "pipe = [dict(type='ResizeEdge', scale=32), dict(type='PackInputs')]\n"
        "data = dict(type='BuiltinDataset', img_size=48, pipeline=pipe)\n"
        "custom_hooks = [dict(type='KNNHook', interval=1, k=5,\n"
        "    bank_dataloader=dict(**loader, dataset=dict(**data, split='train', num_samples=128)),\n"
        "    query_dataloader=dict(**loader, dataset=dict(**data, split='val', num_samples=64)))]\n"
    )
    proc = run(
        [
            sys.executable,
            'tools/train.py',
            str(cfg),
            '--work-dir',
            str(tmp_path / 'w'),
            '--cfg-options',
            *SMALL,
            'train_dataloader.dataset.num_samples=128',
            'train_cfg.max_epochs=2',
        ]
    )
    reports = [line for line in (proc.stdout + proc.stderr).splitlines() if 'knn/top1=' in line]
    assert len(reports) == 2, reports  # after each of the 2 epochs


# --- flags -> config, without running anything ----------------------------------------------------------------------


def test_train_flags_merge_like_mmpretrain(monkeypatch):
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.delenv('LOCAL_RANK')  # so that teardown removes what parse_args exports
    cfg = train_cfg(DEMO, '--local_rank', '1')
    assert os.environ['LOCAL_RANK'] == '1'
    assert cfg.work_dir == './work_dirs/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px'
    assert (cfg.launcher, cfg.resume, cfg.load_from) == ('none', False, None)
    loader = cfg.train_dataloader
    assert loader.persistent_workers and loader.collate_fn == dict(type='mimlab.default_collate')
    assert loader.pin_memory == torch.cuda.is_available()

    cfg = train_cfg(DEMO, '--resume')
    assert (cfg.resume, cfg.load_from) == (True, None)  # mmengine then reads work_dir/last_checkpoint
    cfg = train_cfg(DEMO, '--resume', 'a/epoch_2.pth', '--cfg-options', 'train_dataloader.num_workers=0')
    assert (cfg.resume, cfg.load_from) == (True, 'a/epoch_2.pth')
    assert cfg.train_dataloader.persistent_workers is False  # torch refuses persistent workers without workers

    mae = 'configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'
    assert train_cfg(mae, '--auto-scale-lr').auto_scale_lr == dict(base_batch_size=4096, enable=True)
    # --cfg-options are merged last, so they beat the flags
    assert (
        train_cfg(mae, '--auto-scale-lr', '--cfg-options', 'auto_scale_lr.enable=False').auto_scale_lr.enable is False
    )
    with pytest.raises(ValueError, match='base_batch_size'):
        train_cfg(DEMO, '--auto-scale-lr')
    cfg = train_cfg(DEMO, '--auto-scale-lr', '--cfg-options', 'auto_scale_lr.base_batch_size=64')
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=64)
    cfg = train_cfg(LINEAR, '--no-validate', '--work-dir', 'w')
    assert cfg.work_dir == 'w' and cfg.val_cfg is None and cfg.val_dataloader is None and cfg.val_evaluator is None


def test_amp_precision_follows_the_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.warns(UserWarning, match='needs a GPU'):
        ow = train_cfg(DEMO, '--amp').optim_wrapper
    assert ow.type == 'OptimWrapper' and 'dtype' not in ow and 'loss_scale' not in ow
    with pytest.warns(UserWarning, match='needs a GPU'):  # published AMP recipes run on CPU too
        assert train_cfg('configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py').optim_wrapper.type == (
            'OptimWrapper'
        )
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: True)
    ow = train_cfg(DEMO, '--amp').optim_wrapper
    assert (ow.type, ow.dtype, ow.loss_scale) == ('AmpOptimWrapper', 'bfloat16', dict(enabled=False))
    ow = train_cfg(DEMO, '--amp', '--cfg-options', 'optim_wrapper.dtype=float16').optim_wrapper
    assert (ow.dtype, ow.loss_scale) == ('float16', 'dynamic')
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: False)
    ow = train_cfg(DEMO, '--amp').optim_wrapper
    assert (ow.type, ow.get('dtype'), ow.loss_scale) == ('AmpOptimWrapper', None, 'dynamic')


def test_bf16_amp_wrapper_steps_without_a_loss_scaler(monkeypatch):
    """The bf16 setting resolve_amp writes builds and steps with mmengine's AmpOptimWrapper (GPU check faked)."""
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_module
    from mmengine.optim import build_optim_wrapper

    monkeypatch.setattr(amp_module, 'is_cuda_available', lambda: True)
    model = torch.nn.Linear(4, 2)
    wrapper = build_optim_wrapper(
        model,
        dict(type='AmpOptimWrapper', dtype='bfloat16', loss_scale=dict(enabled=False), optimizer=dict(type='SGD')),
    )
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.randn(3, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().square().mean())
    assert not torch.equal(model.weight, before)
    assert not wrapper.loss_scaler.is_enabled() and wrapper.state_dict()['loss_scaler'] == {}


def test_test_flags(tmp_path):
    def merged(config, **kw):
        args = Namespace(config=config, checkpoint='c.pth', work_dir=None, cfg_options=None, launcher='none', **kw)
        return merge_test_args(Config.fromfile(ROOT / config), args)

    cfg = merged(LINEAR, out=str(tmp_path / 'pred.pkl'), out_item='pred')
    assert cfg.load_from == 'c.pth'
    assert cfg.test_evaluator[-1] == dict(type='DumpResults', out_file_path=str(tmp_path / 'pred.pkl'))
    assert cfg.test_evaluator[0].type == 'Accuracy'
    with pytest.raises(ValueError, match='.pkl'):
        merged(LINEAR, out='pred.json', out_item='pred')
    with pytest.raises(ValueError, match='--out-item metrics'):
        merged(KNN, out='pred.pkl', out_item='pred')
    assert merged(KNN, out='m.json', out_item='metrics').test_evaluator == []


def test_setup_distributed_wraps_cpu_models_without_device_ids(monkeypatch):
    """One gloo process: the group comes up although the config asks for nccl, and mmengine's DDP wrapper with
    mmengine's default ``device_ids=[LOCAL_RANK]`` builds around a CPU module."""
    import torch.distributed as dist

    from mimlab.registry import MODEL_WRAPPERS

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    env = dict(RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()), LOCAL_RANK='0')
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv('LOCAL_RANK')
    cfg = Config(dict(launcher='pytorch', env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=60))))
    try:
        setup_distributed(cfg)
        assert dist.get_backend() == 'gloo' and os.environ['LOCAL_RANK'] == '0'
        assert cfg.model_wrapper_cfg == dict(
            type='MMDistributedDataParallel', broadcast_buffers=False, find_unused_parameters=False, device_ids=None
        )
        cfg = Config(dict(launcher='pytorch', model_wrapper_cfg=dict(find_unused_parameters=True)))
        setup_distributed(cfg)  # the group exists already: only the wrapper config changes
        assert cfg.model_wrapper_cfg == dict(find_unused_parameters=True, device_ids=None)
        ddp = MODEL_WRAPPERS.build(
            dict(type='MMDistributedDataParallel', **cfg.model_wrapper_cfg),
            default_args=dict(module=torch.nn.Linear(2, 2), device_ids=[0]),
        )
        assert ddp.device_ids is None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_slurm_environment(monkeypatch):
    from mimlab.utils.dist import _slurm_env

    # setenv first, so that teardown restores (or removes) what _slurm_env writes
    for key in ('MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'SLURM_LOCALID'):
        monkeypatch.setenv(key, 'x')
        monkeypatch.delenv(key)
    monkeypatch.delenv('SLURM_NTASKS_PER_NODE', raising=False)
    monkeypatch.setenv('PATH', '/nonexistent')  # no scontrol
    with pytest.raises(RuntimeError, match='SLURM_PROCID.*srun'):
        _slurm_env(None)
    slurm = dict(SLURM_PROCID='3', SLURM_NTASKS='4', SLURM_NODELIST='node[1-2]', SLURM_NNODES='2', SLURM_JOB_ID='7123')
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(RuntimeError, match=r'node\[1-2\].*set MASTER_ADDR'):
        _slurm_env(None)
    monkeypatch.setenv('SLURM_NNODES', '1')
    _slurm_env(None)
    got = {k: os.environ[k] for k in ('MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK', 'LOCAL_WORLD_SIZE')}
    assert got == dict(MASTER_ADDR='127.0.0.1', MASTER_PORT='29623', WORLD_SIZE='4', RANK='3', LOCAL_WORLD_SIZE='4')


# --- the Slurm launchers, with a stand-in srun ---------------------------------------------------------------------

_FAKE_SRUN = """#!{python}
# records its command line, then starts --ntasks copies of the command with the variables srun sets
import json, os, subprocess, sys
args, opts = sys.argv[1:], []
while args and args[0].startswith('-'):
    opts += args[:2] if args[0] == '-p' else args[:1]
    args = args[2:] if args[0] == '-p' else args[1:]
json.dump(dict(opts=opts, cmd=args), open(os.environ['FAKE_SRUN_LOG'], 'w'))
if os.environ.get('FAKE_SRUN_DRY'):
    sys.exit(0)
n = int([o for o in opts if o.startswith('--ntasks=')][0].split('=')[1])
env = dict(os.environ, SLURM_NTASKS=str(n), SLURM_NODELIST='localhost', SLURM_NNODES='1', SLURM_JOB_ID='1')
procs = [subprocess.Popen(args, env=dict(env, SLURM_PROCID=str(r), SLURM_LOCALID=str(r))) for r in range(n)]
sys.exit(max(p.wait() for p in procs))
"""


def slurm(tmp_path, script, *argv, dry=True, **env):
    """Run ``tools/<script>`` from ``tmp_path`` (not the repository) with a stand-in ``srun`` on PATH."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / 'srun').write_text(_FAKE_SRUN.format(python=sys.executable))
    # what `sinfo -h -p P -o %G` prints: the partition's GRES (FAKE_SINFO_GRES), or nothing, as for an unknown one
    (bin_dir / 'sinfo').write_text('#!/bin/sh\n[ -n "$FAKE_SINFO_GRES" ] && echo "$FAKE_SINFO_GRES"\nexit 0\n')
    for tool in ('srun', 'sinfo'):
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / 'srun.json'
    env = dict(
        os.environ,
        PATH=f'{bin_dir}:{os.environ["PATH"]}',
        PYTHON=sys.executable,
        FAKE_SRUN_LOG=str(log),
        OMP_NUM_THREADS='1',
        **env,
    )
    if dry:
        env['FAKE_SRUN_DRY'] = '1'
    proc = subprocess.run(
        ['bash', str(ROOT / 'tools' / script), *map(str, argv)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(log.read_text()), proc


def test_slurm_launcher_command_lines(tmp_path):
    config = str(ROOT / DEMO)
    srun, _ = slurm(tmp_path, 'slurm_train.sh', 'gpu', 'mae', config, '--amp', GPUS='16', SRUN_ARGS='--quotatype=auto')
    assert srun['opts'] == [
        '-p',
        'gpu',
        '--job-name=mae',
        '--gres=gpu:8',
        '--ntasks=16',
        '--ntasks-per-node=8',
        '--cpus-per-task=5',
        '--kill-on-bad-exit=1',
        '--quotatype=auto',
    ]
    assert srun['cmd'] == [sys.executable, '-u', str(ROOT / 'tools/train.py'), config, '--launcher=slurm', '--amp']
    srun, _ = slurm(tmp_path, 'slurm_test.sh', 'gpu', 'ev', config, 'c.pth', '--out', 'p.pkl', GPUS='1')
    assert '--ntasks=1' in srun['opts'] and '--gres=gpu:8' in srun['opts']
    assert srun['cmd'][2:] == [str(ROOT / 'tools/test.py'), config, 'c.pth', '--launcher=slurm', '--out', 'p.pkl']


def test_slurm_launchers_ask_for_gpus_only_where_the_partition_has_them(tmp_path):
    config = str(ROOT / DEMO)
    for script, argv in (('slurm_train.sh', ()), ('slurm_test.sh', ('c.pth',))):
        srun, proc = slurm(tmp_path, script, 'cpu', 'mae', config, *argv, GPUS='2', FAKE_SINFO_GRES='(null)')
        assert not any(o.startswith('--gres') for o in srun['opts']), srun['opts']
        assert '--ntasks-per-node=8' in srun['opts']  # GPUS_PER_NODE still caps the tasks per node
        assert 'partition cpu has no gpu GRES' in proc.stderr
        srun, _ = slurm(tmp_path, script, 'gpu', 'mae', config, *argv, GPUS='2', FAKE_SINFO_GRES='gpu:a100:8(S:0-1)')
        assert '--gres=gpu:8' in srun['opts']


def test_slurm_train_two_cpu_tasks(tmp_path):
    """slurm_train.sh with a work dir and no GPUs: two tasks train over gloo through mimlab's slurm set-up."""
    work = tmp_path / 'work'
    srun, proc = slurm(
        tmp_path,
        'slurm_train.sh',
        'cpu',
        'mae',
        ROOT / DEMO,
        work,
        '--cfg-options',
        *SMALL,
        'train_dataloader.dataset.num_samples=128',
        'train_cfg.max_epochs=2',
        dry=False,
        GPUS='2',
        GPUS_PER_NODE='0',
        MASTER_PORT=str(free_port()),
    )
    assert not any(o.startswith('--gres') for o in srun['opts'])
    assert '--ntasks=2' in srun['opts'] and '--ntasks-per-node=2' in srun['opts']
    assert f'--work-dir={work}' in srun['cmd'] and '--launcher=slurm' in srun['cmd']
    out = proc.stdout + proc.stderr
    assert 'Distributed launcher: slurm' in out and 'Distributed training: True' in out
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth', 'epoch_2.pth']
    assert [r['iter'] for r in scalars(work)] == [1, 2]  # 128 images / (2 tasks x 64)


# --- weights-only resume and tools/test.py end to end ---------------------------------------------------------------


def test_resume_refuses_a_crafted_checkpoint(tmp_path):
    """The real resume path (mmengine's torch.load, weights-only by default) stops before any pickled code runs."""
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {}, 'meta': _Evil(marker)}, evil)
    proc = run(
        [sys.executable, 'tools/train.py', DEMO, '--work-dir', str(tmp_path), '--resume', str(evil), '--cfg-options']
        + SMALL,
        check=False,
    )
    assert proc.returncode != 0 and 'Weights only load failed' in proc.stderr, proc.stderr[-2000:]
    assert 'posix.system' in proc.stderr or 'os.system' in proc.stderr
    assert not marker.exists()


def test_test_py_writes_knn_metrics(full_run, tmp_path):
    out = tmp_path / 'metrics.json'
    run(
        [
            sys.executable,
            'tools/test.py',
            KNN,
            str(full_run / 'epoch_3.pth'),
            '--work-dir',
            str(tmp_path),
            '--out',
            str(out),
            '--out-item',
            'metrics',
            '--cfg-options',
            'test_dataloader.dataset.num_samples=64',
            'test_cfg.bank_dataloader.dataset.num_samples=128',
        ]
    )
    metrics = json.loads(out.read_text())
    assert 0 <= metrics['knn/top1'] <= 100 and 'knn/top5' in metrics


EXIT_SCRIPT = """
import sys, time, torch, torch.distributed as dist
from mimlab.utils import finish_dist
dist.init_process_group('gloo')
t = torch.ones(1000)
for _ in range(5):
    dist.all_reduce(t)
if dist.get_rank() == 0:
    time.sleep(0.5)  # rank 0 still writes the last checkpoint while rank 1 is done
finish_dist()
"""


def test_ranks_leave_without_sigabrt(tmp_path):
    # Without finish_dist a rank that exits with a live gloo group dies of SIGABRT ("terminate called without an
    # active exception") about one run in five here; tools/train.py and tools/test.py end with it.
    script = tmp_path / 'leave.py'
    script.write_text(EXIT_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    for _ in range(3):
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2']
        cmd += ['--master_port', str(free_port()), str(script)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and 'terminate called' not in proc.stderr, proc.stderr[-2000:]
