"""tools/train.py, tools/test.py and the launchers, run as real processes on CPU."""

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DEMO = 'configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py'
SMALL = ['train_dataloader.num_workers=0', 'default_hooks.logger.interval=1']


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
    env = dict(os.environ, PYTHON=sys.executable, PORT='29631', OMP_NUM_THREADS='1')
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
        "loader = dict(batch_size=64, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),\n"
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
