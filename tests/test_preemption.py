"""SIGTERM (what Slurm sends on preemption / scancel) to a real tools/train.py run and its DataLoader workers: a
checkpoint at the next iteration, exit status 0, and --resume finishes the run with the right iteration count."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = 'configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py'
# 256 samples / batch 16 = 16 iterations per epoch, 4 epochs = 64 iterations; logged every iteration
OPTIONS = [
    '--cfg-options',
    'train_dataloader.batch_size=16',
    'train_dataloader.num_workers=2',
    'train_dataloader.dataset.num_samples=256',
    'train_cfg.max_epochs=4',
    'default_hooks.logger.interval=1',
]


def _iters(work_dir: Path) -> list[int]:
    out = []
    for scalars in sorted(work_dir.rglob('scalars.json')):
        out += [json.loads(line)['iter'] for line in scalars.read_text().splitlines() if '"loss"' in line]
    return out


def _train(work_dir: Path, *extra, **popen_kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    args = [sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work_dir), *extra, *OPTIONS]
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen_kw
    )


def test_sigterm_saves_and_exits_cleanly_then_resume_finishes(tmp_path):
    work_dir = tmp_path / 'run'
    proc = _train(work_dir, start_new_session=True)  # own process group: signal it like Slurm signals a step
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and len(_iters(work_dir)) < 20:
        time.sleep(0.2)
    assert proc.poll() is None, 'the run ended before it could be signalled:\n' + proc.stdout.read()[-3000:]
    os.killpg(proc.pid, signal.SIGTERM)  # the trainer and its 2 DataLoader workers
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    assert 'stopped on request (SIGTERM) after saving a checkpoint' in out

    stopped_at = _iters(work_dir)[-1]
    assert 20 <= stopped_at < 64
    latest = (work_dir / 'last_checkpoint').read_text().strip()
    assert Path(latest).name == f'iter_{stopped_at}.pth' and Path(latest).is_file()

    proc = _train(work_dir, '--resume')
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    iters = _iters(work_dir)
    # each iteration trained exactly once over the two runs, ending at the configured 64
    assert iters == list(range(1, 65)), iters
