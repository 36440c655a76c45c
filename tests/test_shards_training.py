"""The demo MAE trained from WebDataset shards and from a Hugging Face dataset saved to disk; a shard run killed
mid-epoch and resumed with ``--resume`` sees the samples (and losses) of the uninterrupted run."""

import json
import signal
import sys
from pathlib import Path

from mmengine.config import Config

from mimlab.datasets import BuiltinDataset
from mimlab.datasets.shards import write_shards
from tests.test_resume_fidelity import finish, log_text, logged, start

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / 'configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py'
NUM, SIZE, BATCH = 96, 48, 16  # the demo's 48 px images; 96 / 16 = 6 iterations per epoch

PIPELINE = """[
    dict(type='MAERandomResizedCrop', scale=32, crop_ratio_range=(0.2, 1.0), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]"""

# two epochs of the demo on shards, two workers; a checkpoint every 3 iterations; every sample recorded
BASE = """
_base_ = '{demo}'
custom_imports = dict(imports=['tests.stream_hooks'], allow_failed_imports=False)
train_dataloader = dict(
    batch_size={batch},
    num_workers=2,
    dataset=dict(_delete_=True, type='WebDataset', urls='train-{{000000..000007}}.tar', data_root='{shards}',
                 shuffle_buffer=16, seed=1, pipeline={pipeline}),
)
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=3, max_keep_ckpts=-1))
custom_hooks = [dict(type='RecordSamplesHook')]
randomness = dict(seed=0, deterministic=True)
"""
KILLED = """
_base_ = './base.py'
custom_imports = dict(imports=['tests.fault_hooks', 'tests.stream_hooks'], allow_failed_imports=False)
custom_hooks = [dict(type='RecordSamplesHook'), dict(type='KillAtIterHook', iteration=11)]
"""


def builtin_png_shards(out: Path) -> Path:
    """The demo's built-in images as lossless PNG members (pixels identical to the in-memory dataset)."""
    import cv2

    ds = BuiltinDataset(num_samples=NUM, img_size=SIZE, lazy_init=True)
    samples = []
    for i in range(NUM):
        img, label = ds.render(i)
        samples.append((f'{i:09d}', {'png': cv2.imencode('.png', img)[1].tobytes(), 'cls': str(label)}))
    write_shards(samples, str(out), samples_per_shard=12, progress=False)
    return out


def recorded(work_dir: Path, name: str = 'samples.jsonl') -> dict[int, list[str]]:
    rows = [json.loads(line) for line in (work_dir / name).read_text().splitlines()]
    return {r['iter']: r['samples'] for r in rows}


def test_shard_run_killed_mid_epoch_resumes_with_the_same_samples(tmp_path):
    shards = builtin_png_shards(tmp_path / 'shards')
    (tmp_path / 'base.py').write_text(BASE.format(demo=DEMO, shards=shards, pipeline=PIPELINE, batch=BATCH))
    (tmp_path / 'killed.py').write_text(KILLED)
    full, cut = tmp_path / 'full', tmp_path / 'cut'
    uninterrupted, killed = start(tmp_path / 'base.py', full), start(tmp_path / 'killed.py', cut)
    rc, out = finish(uninterrupted)
    assert rc == 0, out[-3000:]
    rc, out = finish(killed)
    assert rc == -signal.SIGKILL, out[-3000:]  # died before iteration 11, in the middle of epoch 2
    assert (cut / 'last_checkpoint').read_text() == str(cut / 'iter_9.pth')
    rc, out = finish(start(tmp_path / 'base.py', cut, '--resume'))
    assert rc == 0, out[-3000:]
    assert 'resuming epoch 2 at batch 4 (sampler skip)' in log_text(cut)
    assert 'differs from the checkpoint' not in log_text(cut)

    before, after = recorded(full), recorded(cut)
    assert sorted(before) == list(range(1, 13))
    for epoch in (0, 1):  # each epoch: all 96 samples once, in batches of 16
        seen = [p for i in range(6 * epoch + 1, 6 * epoch + 7) for p in before[i]]
        assert len(seen) == NUM and len(set(seen)) == NUM
    assert before[1] != before[7]  # another order in epoch 2
    # iterations 10, 11 were recorded by the killed run (10) and again by the resumed one (10-12)
    for i in range(1, 13):
        assert after[i] == before[i], i
    rows = logged(cut)
    assert [r['iter'] for r in rows[10:]] == [10, 11, 12]
    # the crops and flips are seeded per sample, the masks restored with the RNG states: the same losses
    for a, b in zip(rows[10:], logged(full)[9:], strict=True):
        assert a['loss'] == b['loss'], a['iter']


def _train(cfg_text: str, work_dir: Path) -> list[float]:
    from mimlab.engine import build_runner

    path = work_dir.parent / f'{work_dir.name}.py'
    path.write_text(cfg_text)
    cfg = Config.fromfile(str(path))
    cfg.work_dir = str(work_dir)
    runner = build_runner(cfg)
    runner.train()
    return [r['loss'] for r in logged(work_dir)]


def test_demo_mae_trains_from_shards_and_hf_like_from_the_builtin_dataset(tmp_path):
    """Three epochs of the demo (6 iterations each) from the same images in memory, in shards and in a saved
    Hugging Face dataset: the per-epoch mean loss falls alike."""
    common = f"""
_base_ = '{DEMO}'
train_dataloader = dict(batch_size={BATCH}, num_workers=0, persistent_workers=False)
train_cfg = dict(max_epochs=3)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=100))
custom_hooks = []
randomness = dict(seed=0)
"""
    shards, hf = builtin_png_shards(tmp_path / 'shards'), hf_dataset(tmp_path / 'hf')
    datasets = dict(
        builtin=f'dict(num_samples={NUM})',
        shards=f"dict(_delete_=True, type='WebDataset', urls='{shards}/train-{{000000..000007}}.tar', "
        f'pipeline={PIPELINE})',
        hf=f"dict(_delete_=True, type='HFDataset', path='{hf}', split='train', pipeline={PIPELINE})",
    )
    losses = {k: _train(common + f'train_dataloader.update(dataset={v})\n', tmp_path / k) for k, v in datasets.items()}
    means = {k: [sum(x[i : i + 6]) / 6 for i in (0, 6, 12)] for k, x in losses.items()}
    for name, m in means.items():
        assert len(losses[name]) == 18
        assert m[2] < 0.8 * m[0], (name, m)  # it learns
        for a, b in zip(m, means['builtin']):
            assert abs(a - b) / b < 0.1, means  # the same curve within 10 %


def hf_dataset(out: Path) -> Path:
    """The demo's images as a Hugging Face dataset (PNG images, class labels) saved with ``save_to_disk``."""
    import cv2
    import datasets

    ds = BuiltinDataset(num_samples=NUM, img_size=SIZE, lazy_init=True)
    rows = dict(image=[], label=[])
    for i in range(NUM):
        img, label = ds.render(i)
        rows['image'].append({'bytes': cv2.imencode('.png', img)[1].tobytes(), 'path': None})
        rows['label'].append(label)
    features = datasets.Features(image=datasets.Image(), label=datasets.ClassLabel(names=list(ds.metainfo['classes'])))
    datasets.DatasetDict(train=datasets.Dataset.from_dict(rows, features=features)).save_to_disk(str(out))
    return out


def test_two_rank_training_from_shards_reads_each_sample_once_per_epoch(tmp_path):
    """tools/dist_train.sh with 2 CPU ranks (gloo) x 2 workers: every rank its own half of each epoch."""
    import os
    import socket
    import subprocess

    shards = builtin_png_shards(tmp_path / 'shards')
    cfg = BASE.format(demo=DEMO, shards=shards, pipeline=PIPELINE, batch=8)  # 96 / 2 ranks / 8 = 6 iterations
    (tmp_path / 'ddp.py').write_text(cfg + 'default_hooks.update(checkpoint=dict(by_epoch=True, interval=10))\n')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1', PORT=str(port), PYTHON=sys.executable)
    run = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(tmp_path / 'ddp.py'), '2', '--work-dir', str(tmp_path / 'w')],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    ranks = [recorded(tmp_path / 'w', name) for name in ('samples.jsonl', 'samples.rank1.jsonl')]
    for r in ranks:
        assert sorted(r) == list(range(1, 13))  # 2 epochs x 6 iterations on each rank
    for epoch in (0, 1):
        seen = [p for r in ranks for i in range(6 * epoch + 1, 6 * epoch + 7) for p in r[i]]
        assert len(seen) == NUM and len(set(seen)) == NUM
