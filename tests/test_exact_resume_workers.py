"""Resume is bit-exact with DataLoader workers: real ``tools/train.py`` jobs stopped from outside (SIGKILL at a random
iteration, SIGKILL in the middle of a checkpoint write, SIGTERM) and resumed end with the uninterrupted job's weights,
optimizer state, schedulers and RNG states: MAE (masks drawn on the device), A2MIM (masks drawn in the pipeline), the
fine-tuning recipe (drop path, RandAugment, Mixup/CutMix, random erasing), and MixMIM under 2-process DDP. Leftovers
of killed checkpoint writes are removed when a run starts, complete checkpoints never.

The uninterrupted reference runs without workers: per-sample seeding makes a sample's augmentations independent of
the worker count, so the same final state also shows that.
"""

import json
import os
import pickle
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from mimlab.datasets import BuiltinDataset, ExactResumeSampler, default_collate
from mimlab.datasets.samplers import SampleKey, SeededFetch
from mimlab.registry import DATASETS
from mimlab.utils import load_checkpoint_weights_only
from tests.helpers import tiny_mae

ROOT = Path(__file__).resolve().parents[1]
MAE = ROOT / 'configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py'
A2MIM = ROOT / 'configs/demo/a2mim_resnet-test-l3_1xb64-coslr-10e_builtin-64px.py'
MIXMIM = ROOT / 'configs/demo/mixmim_mixmim-test_1xb64-coslr-10e_builtin-64px.py'
FINETUNE = ROOT / 'configs/demo/vit-test-p4_ft-1xb128-coslr-10e_builtin-32px.py'
FINETUNE_FROM_SCRATCH = 'model = dict(backbone=dict(init_cfg=None))\nval_cfg = val_dataloader = val_evaluator = None\n'
ITERS = 24  # 128 samples / 16 = 8 iterations per epoch, 3 epochs; a checkpoint every 4 iterations
SLOW_WRITE = 12  # the checkpoint write that is killed; the job then resumes from iter_8.pth, an epoch's end


def recipe(demo: Path, workers: int, persistent: bool, ranks: int = 1, slow_write: int | None = None) -> str:
    """The demo shrunk to ``ITERS`` iterations (16 images per step over all ranks), checkpointed every 4."""
    hooks = [f"dict(type='SlowCheckpointWriteHook', iteration={slow_write})"] if slow_write else []
    hooks.append("dict(type='SaveFinalWeightsHook')")
    return f"""
_base_ = '{demo}'
custom_imports = dict(imports=['tests.fault_hooks'], allow_failed_imports=False)
train_dataloader = dict(
    batch_size={16 // ranks}, num_workers={workers}, persistent_workers={persistent}, dataset=dict(num_samples=128)
)
train_cfg = dict(max_epochs=3)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=4, max_keep_ckpts=-1))
randomness = dict(seed=0, deterministic=True)
custom_hooks = [{', '.join(hooks)}]
""" + (FINETUNE_FROM_SCRATCH if demo == FINETUNE else '')


def start(config: Path, work_dir: Path, *extra, ranks: int = 1) -> subprocess.Popen:
    """tools/train.py (or dist_train.sh with 2 ranks) in a process group of its own, like a Slurm step."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1', PYTHON=sys.executable)
    if ranks == 1:
        cmd = [sys.executable, 'tools/train.py', str(config), '--work-dir', str(work_dir), *extra]
    else:
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            env['PORT'] = str(s.getsockname()[1])
        cmd = ['bash', 'tools/dist_train.sh', str(config), str(ranks), '--work-dir', str(work_dir), *extra]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f'timed out:\n{out[-3000:]}')
    return proc.returncode, out


def logged(work_dir: Path) -> list[list[dict]]:
    """The logged training rows of each start of the job, in time order."""
    runs = []
    for f in sorted(work_dir.glob('*/vis_data/scalars.json')):
        runs.append([json.loads(line) for line in f.read_text().splitlines() if '"loss"' in line])
    return runs


def last_iter(work_dir: Path) -> int:
    runs = logged(work_dir)
    return runs[-1][-1]['iter'] if runs and runs[-1] else 0


def wait_for(proc: subprocess.Popen, ready, what: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None or time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f'the job ended or hung before {what}:\n{proc.communicate()[0][-3000:]}')
        time.sleep(0.01)


def interrupt(proc: subprocess.Popen, work_dir: Path, how: str, after: int) -> str:
    """Stop the job ``how`` ('kill', 'term': once iteration ``after`` is logged; 'kill_in_write': while the checkpoint
    of iteration ``after`` is being written); returns its output."""
    if how == 'kill_in_write':
        written = lambda: any(f.stat().st_size for f in work_dir.glob(f'.iter_{after}.pth.*.tmp'))  # noqa: E731
        wait_for(proc, written, f'writing iter_{after}.pth')  # its data written, not yet renamed
    else:
        wait_for(proc, lambda: last_iter(work_dir) >= after, f'iteration {after}')
    os.killpg(proc.pid, signal.SIGKILL if how.startswith('kill') else signal.SIGTERM)
    rc, out = finish(proc)
    if how == 'term':
        assert rc == 0 and 'stopped on request (SIGTERM) after saving a checkpoint' in out, out[-3000:]
    else:
        assert rc == -signal.SIGKILL, out[-3000:]
    return out


def assert_identical(a, b, where: str = '') -> None:
    """Nested checkpoint contents equal bit for bit (tensors with torch.equal)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_identical(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f'{where}[{i}]')
    else:
        assert a == b, (where, a, b)


def assert_same_end(reference: Path, resumed: Path) -> None:
    end, ref = (load_checkpoint_weights_only(str(d / f'iter_{ITERS}.pth')) for d in (resumed, reference))
    for key in ('state_dict', 'optimizer', 'param_schedulers', 'rng_state'):
        assert_identical(end[key], ref[key], key)
    assert end['meta']['iter'] == ref['meta']['iter'] == ITERS


def assert_same_losses(reference: Path, resumed: Path) -> None:
    (ref,) = logged(reference)
    loss = {row['iter']: row['loss'] for row in ref}
    assert sorted(loss) == list(range(1, ITERS + 1))
    for run, rows in enumerate(logged(resumed)):  # each start, also the iterations a killed start trained again
        for row in rows:
            assert row['loss'] == loss[row['iter']], (run, row['iter'])


# (DataLoader workers, persistent) of each start, and how each start but the last is stopped: 'kill' / 'term' at a
# random iteration (before the killed write: 2-7; after it: 14-20), 'kill_in_write' while iter_12.pth is written
CHAINS = {
    # the case: MAE (masks drawn on the device), 2 persistent workers; the kill in the write resumes from
    # iter_8.pth, written at the end of epoch 1
    'mae-2-persistent-workers': (MAE, [(2, True)] * 4, ['kill', 'kill_in_write', 'term']),
    # masks drawn in the pipeline; every start with other workers (augmentations do not depend on them)
    'a2mim-pipeline-masks': (A2MIM, [(1, False), (2, True), (0, False), (2, False)], ['term', 'kill_in_write', 'kill']),
    # fine-tuning: drop path, RandAugment (Python's random), Mixup/CutMix (numpy, main process), random erasing, EMA
    'finetune-mixup-droppath': (FINETUNE, [(2, True), (1, True), (2, False)], ['kill_in_write', 'term']),
}


@pytest.mark.parametrize('name', list(CHAINS))
def test_killed_and_resumed_runs_end_bit_identical_to_the_uninterrupted_run(tmp_path, name):
    demo, workers, stops = CHAINS[name]
    rng = random.Random()
    written = stops.index('kill_in_write')
    when = [
        SLOW_WRITE if s == 'kill_in_write' else rng.randint(2, 7) if i < written else rng.randint(14, 20)
        for i, s in enumerate(stops)
    ]
    why = f'{name}: stops {list(zip(stops, when, strict=True))}'

    (tmp_path / 'ref.py').write_text(recipe(demo, 0, False))
    reference = start(tmp_path / 'ref.py', tmp_path / 'ref')
    cut, outs = tmp_path / 'cut', []
    for i, (nw, persistent) in enumerate(workers):
        cfg = tmp_path / f'start{i}.py'
        cfg.write_text(recipe(demo, nw, persistent, slow_write=SLOW_WRITE if i <= written else None))
        proc = start(cfg, cut, *(['--resume'] if i else []))
        if i < len(stops):
            outs.append(interrupt(proc, cut, stops[i], when[i]))
        else:
            rc, out = finish(proc)
            assert rc == 0, (why, out[-3000:])
            outs.append(out)
        if i < len(stops) and stops[i] == 'kill_in_write':
            (leftover,) = cut.glob(f'.iter_{SLOW_WRITE}.pth.*.tmp')
            resume_from = Path((cut / 'last_checkpoint').read_text())
            assert resume_from.is_file() and resume_from.name != f'iter_{SLOW_WRITE}.pth', why
            assert leftover.stat().st_size > 0
    # the start after the killed write removed its leftover, said so, and kept the checkpoint it resumed from
    removal = next(out for out in outs if 'left by interrupted checkpoint writes' in out)
    assert str(leftover) in removal and not leftover.exists() and resume_from.is_file(), why
    assert outs.index(removal) == written + 1, why
    assert 'restored the RNG states saved at iteration' in outs[-1], why

    rc, out = finish(reference)
    assert rc == 0, out[-3000:]
    assert_same_losses(tmp_path / 'ref', cut)
    assert_same_end(tmp_path / 'ref', cut)


def test_two_process_ddp_killed_and_resumed_ends_with_the_same_weights_on_every_rank(tmp_path):
    """MixMIM (masks drawn on the device, one stream per rank), 1 persistent worker per rank."""
    cfg = tmp_path / 'ddp.py'
    cfg.write_text(recipe(MIXMIM, 1, True, ranks=2))
    full, cut = tmp_path / 'full', tmp_path / 'cut'
    reference = start(cfg, full, ranks=2)
    killed_at = random.Random().randint(5, 15)
    interrupt(start(cfg, cut, ranks=2), cut, 'kill', killed_at)
    rc, out = finish(start(cfg, cut, '--resume', ranks=2))
    assert rc == 0, (killed_at, out[-3000:])
    rc, out = finish(reference)
    assert rc == 0, out[-3000:]
    assert_same_losses(full, cut)
    assert_same_end(full, cut)  # holds both ranks' RNG states
    weights = [torch.load(d / f'final_rank{r}.pth') for d in (full, cut) for r in (0, 1)]
    for w in weights[1:]:
        assert_identical(w, weights[0], f'killed at {killed_at}')


def _loader(dataset, workers: int, persistent: bool = False) -> DataLoader:
    sampler = ExactResumeSampler(dataset, shuffle=True, seed=3)
    kw = dict(persistent_workers=persistent) if workers else {}
    return DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=workers, collate_fn=default_collate, **kw)


def test_per_sample_seeding_makes_batches_independent_of_workers_and_leaves_the_main_rngs_alone():
    pipeline = [
        dict(type='RandomResizedCrop', scale=16, crop_ratio_range=(0.2, 1.0)),
        dict(type='RandomFlip', prob=0.5),
        dict(type='SimMIMMaskGenerator', input_size=16, mask_patch_size=4, model_patch_size=4, mask_ratio=0.6),
        dict(type='PackInputs'),
    ]

    def epochs(workers, persistent=False):
        dataset = DATASETS.build(dict(type='BuiltinDataset', num_samples=12, img_size=24, pipeline=pipeline))
        loader = _loader(dataset, workers, persistent)
        loader.generator = torch.Generator().manual_seed(0)  # as mimlab's train loops do
        out = []
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)
            torch.manual_seed(0)
            before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
            out.append([(b['inputs'], [s.mask for s in b['data_samples']]) for b in loader])
            assert torch.equal(torch.get_rng_state(), before[0]), 'the main torch RNG moved'
            assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]
        return out

    ref = epochs(0)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(ref[0], ref[1], strict=True))  # epochs differ
    for got in (epochs(1), epochs(2, persistent=True)):
        for e in range(2):
            for (x, masks), (rx, rmasks) in zip(got[e], ref[e], strict=True):
                assert torch.equal(x, rx)
                assert all(torch.equal(m, rm) for m, rm in zip(masks, rmasks, strict=True))


def test_sample_keys_are_ints_that_survive_pickling():
    key = SampleKey(7, seed=3, epoch=2)
    back = pickle.loads(pickle.dumps(key))
    assert (back, back.seed, back.epoch, type(back)) == (7, 3, 2, SampleKey)
    assert type(key + 1) is int and [10, 11, 12, 13, 14, 15, 16, 17][key] == 17
    dataset = BuiltinDataset(num_samples=8, img_size=8, pipeline=[])
    assert all(isinstance(k, SampleKey) and k.epoch == 0 for k in ExactResumeSampler(dataset, seed=1))
    assert all(type(k) is int for k in ExactResumeSampler(dataset, seed=1, seed_samples=False))
    # the seeded fetch travels with the dataset to spawned workers and fetches from that copy
    copy = pickle.loads(pickle.dumps(dataset))
    assert isinstance(copy.__getitems__, SeededFetch) and copy.__getitems__.dataset is copy


def test_leftovers_of_interrupted_writes_are_removed_at_start_and_complete_checkpoints_never(tmp_path):
    work_dir = tmp_path / 'run'
    work_dir.mkdir()
    leftovers = ['.iter_8.pth.k3_x9q0a.tmp', '.last_checkpoint.a1b2c3d4.tmp', '.epoch_2.pth.zzzzzzzz.tmp']
    kept = [
        'iter_4.pth',  # complete checkpoints
        'epoch_5.pth',
        '.iter_8.pth.tmp',  # not the writer's pattern (no random part)
        '.iter_8.pth.abc.tmp',
        'iter_8.pth.k3_x9q0a.tmp',  # not hidden
        '.notes.txt.k3_x9q0a.tmp',  # the writer's, but not for a checkpoint
    ]
    for name in leftovers + kept:
        (work_dir / name).write_bytes(b'x' * 1000)
    (work_dir / '.iter_12.pth.k3_x9q0a.tmp').mkdir()  # a folder is never removed
    runner = Runner(
        model=tiny_mae(),
        work_dir=str(work_dir),
        experiment_name=f'test_{uuid.uuid4().hex[:8]}',
        train_dataloader=dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type='ExactResumeSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(type='BuiltinDataset', num_samples=4, img_size=32, pipeline=[dict(type='PackInputs')]),
        ),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        train_cfg=dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=1),
        default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1)),
        default_scope='mimlab',
    )
    runner.train()
    for name in leftovers:
        assert not (work_dir / name).exists(), name
    for name in kept:
        assert (work_dir / name).read_bytes() == b'x' * 1000, name
    assert (work_dir / '.iter_12.pth.k3_x9q0a.tmp').is_dir() and (work_dir / 'epoch_1.pth').is_file()
    log = next(work_dir.glob('*/*.log')).read_text()
    assert 'removed 3 file(s) left by interrupted checkpoint writes' in log
    assert all(str(work_dir / name) in log for name in leftovers)
