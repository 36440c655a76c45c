"""A job SIGKILLed mid-epoch and resumed with ``--resume`` ends exactly like the uninterrupted job; checkpoints of
compiled / DDP-wrapped models load into plain ones."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
from mmengine.runner import Runner

from mimlab.utils import load_checkpoint_weights_only
from tests.helpers import tiny_mae

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / 'configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py'

# 192 images / 32 = 6 iterations per epoch, 12 in all; a checkpoint every 3 iterations; every random draw seeded
BASE = f"""
_base_ = '{DEMO}'
train_dataloader = dict(batch_size=32, num_workers=0, persistent_workers=False, dataset=dict(num_samples=192))
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=3, max_keep_ckpts=-1))
randomness = dict(seed=0, deterministic=True)
"""
ITER_BASED = """
train_cfg = dict(_delete_=True, type='ExactResumeIterBasedTrainLoop', max_iters=12)
param_scheduler = [dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=0, end=12)]
log_processor = dict(by_epoch=False)
"""
KILLED = """
_base_ = './base.py'
custom_imports = dict(imports=['tests.fault_hooks'], allow_failed_imports=False)
custom_hooks = [dict(type='KillAtIterHook', iteration=11)]
"""


def start(config, work_dir, *extra) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    return subprocess.Popen(
        [sys.executable, 'tools/train.py', str(config), '--work-dir', str(work_dir), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def logged(work_dir) -> list[dict]:
    rows = []
    for f in sorted(Path(work_dir).glob('*/vis_data/scalars.json')):  # one folder per start, in time order
        rows += [json.loads(line) for line in f.read_text().splitlines() if '"loss"' in line]
    return rows


def log_text(work_dir) -> str:
    return ''.join(p.read_text() for p in Path(work_dir).glob('*/*.log'))


@pytest.mark.parametrize('loop', ['ExactResumeEpochBasedTrainLoop', 'ExactResumeIterBasedTrainLoop'])
def test_sigkill_mid_epoch_then_resume_matches_the_uninterrupted_run(tmp_path, loop):
    (tmp_path / 'base.py').write_text(BASE + (ITER_BASED if loop == 'ExactResumeIterBasedTrainLoop' else ''))
    (tmp_path / 'killed.py').write_text(KILLED)
    full, cut = tmp_path / 'full', tmp_path / 'cut'
    uninterrupted, killed = start(tmp_path / 'base.py', full), start(tmp_path / 'killed.py', cut)
    rc, out = finish(uninterrupted)
    assert rc == 0, out[-3000:]
    rc, out = finish(killed)
    assert rc == -signal.SIGKILL, out[-3000:]  # died before iteration 11, in the middle of epoch 2
    assert (cut / 'last_checkpoint').read_text() == str(cut / 'iter_9.pth')
    assert [r['iter'] for r in logged(cut)] == list(range(1, 11))

    resumed = [start(tmp_path / 'base.py', cut, '--resume')]
    if loop == 'ExactResumeEpochBasedTrainLoop':  # and from the checkpoint at the end of epoch 1
        (tmp_path / 'boundary').mkdir()
        shutil.copy(full / 'iter_6.pth', tmp_path / 'boundary/iter_6.pth')
        resumed.append(start(tmp_path / 'base.py', tmp_path / 'boundary', '--resume', tmp_path / 'boundary/iter_6.pth'))
    for proc in resumed:
        rc, out = finish(proc)
        assert rc == 0, out[-3000:]
        assert 'restored the RNG states saved at iteration' in out
    if loop == 'ExactResumeEpochBasedTrainLoop':
        assert 'resuming epoch 2 at batch 4 (sampler skip)' in log_text(cut)

    before = logged(full)
    after = logged(cut)[10:]  # the resumed run's rows
    # mmengine's own epoch loop would restart epoch 2 from its first batch and end at iteration 15
    assert [r['iter'] for r in after] == list(range(10, 13))
    for a, b in zip(after, before[9:], strict=True):
        assert (a['iter'], a.get('epoch'), a['lr']) == (b['iter'], b.get('epoch'), b['lr'])
        assert a['loss'] == b['loss'], a['iter']  # same data, masks and weights at every step
    end_full = load_checkpoint_weights_only(str(full / 'iter_12.pth'))
    for work_dir in [cut] + [tmp_path / 'boundary'] * (loop == 'ExactResumeEpochBasedTrainLoop'):
        end = load_checkpoint_weights_only(str(work_dir / 'iter_12.pth'))
        for key, value in end_full['state_dict'].items():
            assert torch.equal(end['state_dict'][key], value), (work_dir.name, key)
        assert end['meta']['iter'] == end_full['meta']['iter'] == 12


def _runner(model, work_dir, **kw) -> Runner:
    return Runner(
        model=model,
        work_dir=str(work_dir),
        experiment_name=f'test_{uuid.uuid4().hex[:8]}',
        train_dataloader=dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type='ExactResumeSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='BuiltinDataset', num_samples=8, img_size=32, pipeline=[dict(type='PackInputs')], split='train'
            ),
        ),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        train_cfg=dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=1),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        default_scope='mimlab',
        randomness=dict(seed=0),
        **kw,
    )


@pytest.mark.parametrize('prefix', ['_orig_mod.', 'module.', 'module._orig_mod.'])
def test_compiled_and_wrapped_models_save_plain_keys_and_resume_into_plain_models(tmp_path, prefix):
    model = tiny_mae(img_size=32, patch_size=8)
    plain_keys = list(model.state_dict())
    if prefix == '_orig_mod.':  # a real torch.compile wrapper (OptimizedModule); 'eager' needs no C++ compiler
        model = torch.compile(model, backend='eager')
        assert list(model.state_dict())[0].startswith('_orig_mod.')
    runner = _runner(model, tmp_path / 'a')
    runner.train()  # saves epoch_1.pth through mmengine's CheckpointHook -> Runner.save_checkpoint
    ckpt = load_checkpoint_weights_only(str(tmp_path / 'a/epoch_1.pth'))
    assert list(ckpt['state_dict']) == plain_keys

    if prefix != '_orig_mod.':  # a checkpoint written elsewhere (e.g. by plain torch DDP) with prefixed keys
        ckpt['state_dict'] = {prefix + k: v for k, v in ckpt['state_dict'].items()}
        torch.save(ckpt, tmp_path / 'a/epoch_1.pth')
    plain = tiny_mae(img_size=32, patch_size=8)
    resumed = _runner(plain, tmp_path / 'b', resume=True, load_from=str(tmp_path / 'a/epoch_1.pth'))
    resumed.train()  # max_epochs=1 is already reached: only loads
    assert resumed.train_loop.iter == 2
    for key, value in plain.state_dict().items():
        assert torch.equal(value, ckpt['state_dict'][prefix * (prefix != '_orig_mod.') + key]), key


def test_two_rank_checkpoints_hold_every_ranks_rng_state(tmp_path):
    """mmengine saves on rank 0 only; mimlab's AtomicCheckpointHook gathers both ranks' RNG states before the save."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(port), OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    options = ['train_dataloader.num_workers=0', 'train_dataloader.dataset.num_samples=128', 'train_cfg.max_epochs=2']
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(DEMO), '2', '--work-dir', str(tmp_path), '--cfg-options', *options],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    states = load_checkpoint_weights_only(str(tmp_path / 'epoch_1.pth'))['rng_state']
    assert len(states) == 2
    # diff_rank_seed=True in the default runtime: the ranks' streams differ, so each needs its own state back
    assert not torch.equal(states[0]['torch'], states[1]['torch'])
    assert states[0]['numpy']['keys'].shape == (624,)
