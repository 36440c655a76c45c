"""tools/slurm_train.sh on a real Slurm: two ranks over gloo from srun's variables, and a stop by `scancel
--signal=TERM` that saves a checkpoint, exits 0 and resumes.

Needs a Slurm partition with an idle node of at least 2 CPUs; ``bash tools/misc/start_local_slurm.sh`` (as root)
makes a one-node cluster on this machine. Without one the tests skip. ``MIMLAB_SLURM_PARTITION`` picks the partition
(default: the default partition if it has an idle node, else the first one that has).
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mimlab.utils import load_checkpoint_weights_only

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DEMO = 'configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py'
RANKS = 2
# 128 samples / (2 ranks x batch 16) = 4 iterations per epoch
ITERS_PER_EPOCH = 4
OPTIONS = [
    'train_dataloader.batch_size=16',
    'train_dataloader.dataset.num_samples=128',
    'train_dataloader.num_workers=1',  # a worker per rank: Slurm signals it too
    'default_hooks.logger.interval=1',
]


def _idle_partition() -> str:
    """A partition with an idle node that can take RANKS one-CPU tasks, or pytest.skip with the reason."""
    if shutil.which('sinfo') is None:
        pytest.skip('sinfo not found: no Slurm here (tools/misc/start_local_slurm.sh starts a one-node one, as root)')
    # one line per (node, partition): "debug* idle 2"; the star marks the default partition
    proc = subprocess.run(['sinfo', '-h', '-N', '-o', '%P %t %c'], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f'sinfo failed, is slurmctld running? {proc.stderr.strip()[-300:]}')
    idle = []
    for line in proc.stdout.splitlines():
        partition, state, cpus = line.split()
        if state == 'idle' and int(cpus) >= RANKS:
            idle.append(partition)
    wanted = os.environ.get('MIMLAB_SLURM_PARTITION')
    if wanted:
        if wanted not in (p.rstrip('*') for p in idle):
            pytest.skip(f'MIMLAB_SLURM_PARTITION={wanted}: no idle node with {RANKS} CPUs there')
        return wanted
    if not idle:
        pytest.skip(f'no idle Slurm node with {RANKS} CPUs:\n{proc.stdout}')
    return sorted(idle, key=lambda p: not p.endswith('*'))[0].rstrip('*')


@pytest.fixture(scope='module')
def partition() -> str:
    return _idle_partition()


def _slurm_train(partition: str, job_name: str, work_dir: Path, max_epochs: int, *args: str) -> subprocess.Popen:
    """tools/slurm_train.sh with 2 one-CPU tasks and train.py ``args``; the job's log (stdout+stderr) on ``.stdout``."""
    env = dict(
        os.environ,
        GPUS=str(RANKS),
        GPUS_PER_NODE=str(RANKS),
        CPUS_PER_TASK='1',
        PYTHON=sys.executable,
        OMP_NUM_THREADS='1',
    )
    env.pop('MASTER_PORT', None)  # chosen from the job id
    argv = ['bash', 'tools/slurm_train.sh', partition, job_name, DEMO, str(work_dir)]
    return subprocess.Popen(
        [*argv, *args, '--cfg-options', *OPTIONS, f'train_cfg.max_epochs={max_epochs}'],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen, job_name: str, timeout: float) -> str:
    """The job's log once ``slurm_train.sh`` has exited 0; on a timeout the job is cancelled and the test fails."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        subprocess.run(['scancel', '--name', job_name], check=False)
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f'the job did not finish within {timeout} s:\n{out[-3000:]}')
    assert proc.returncode == 0, out[-3000:]
    return out


def _losses(work_dir: Path) -> list[tuple[int, float]]:
    """(iteration, loss) of every logged training iteration, over all runs in ``work_dir`` (rank 0 writes them)."""
    out = []
    for scalars in sorted(work_dir.rglob('scalars.json')):
        for line in scalars.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # the line being written while a running job is watched
                continue
            if 'loss' in record:
                out.append((record['iter'], record['loss']))
    return out


def test_two_ranks_train_through_slurm_train_sh(partition, tmp_path):
    work_dir = tmp_path / 'run'
    job_name = f'mimlab-test-{os.getpid()}'
    out = _finish(_slurm_train(partition, job_name, work_dir, 2), job_name, 240)

    assert 'srun without --gres' in out or '--gres=gpu' in out
    assert 'Distributed launcher: slurm' in out and 'Distributed training: True' in out
    assert f'GPU number: {RANKS}' in out  # mmengine's name for the world size
    losses = _losses(work_dir)
    # 2 epochs of 128 samples split over 2 ranks: one rank alone would have logged 16 iterations
    assert [it for it, _ in losses] == list(range(1, 2 * ITERS_PER_EPOCH + 1))
    assert all(loss == loss and loss > 0 for _, loss in losses)  # finite, positive L2 losses
    assert (work_dir / 'last_checkpoint').read_text().strip() == str(work_dir / 'epoch_2.pth')
    ckpt = load_checkpoint_weights_only(str(work_dir / 'epoch_2.pth'))
    assert ckpt['meta']['epoch'] == 2
    # each rank contributed its own RNG state (seed + rank): two processes really ran
    states = ckpt['rng_state']
    assert len(states) == RANKS and not torch.equal(states[0]['torch'], states[1]['torch'])


def test_scancel_sigterm_saves_exits_zero_and_resume_finishes(partition, tmp_path):
    """What a preempted or timed-out job gets with `#SBATCH --signal=TERM@...`: SIGTERM to every task of the step
    (and to their DataLoader workers), with no signal to srun itself, which would kill the tasks instead."""
    work_dir = tmp_path / 'run'
    epochs = 10
    total = epochs * ITERS_PER_EPOCH
    job_name = f'mimlab-test-stop-{os.getpid()}'
    proc = _slurm_train(partition, job_name, work_dir, epochs)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and len(_losses(work_dir)) < 3:
        time.sleep(0.2)
    assert proc.poll() is None, 'the job ended before it could be signalled:\n' + proc.stdout.read()[-3000:]
    if len(_losses(work_dir)) < 3:
        subprocess.run(['scancel', '--name', job_name], check=False)
        pytest.fail('no 3 logged iterations within 180 s (is the node busy?):\n' + proc.communicate()[0][-3000:])
    job_id = subprocess.run(
        ['squeue', '-h', '-n', job_name, '-o', '%i'], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(job_id) == 1, job_id
    # without --full: the job's steps only, as `--signal=TERM@T` does. srun itself turns a SIGTERM into a SIGKILL
    # of its tasks, so signalling the batch script and its srun (--full) would lose the checkpoint.
    subprocess.run(['scancel', '--signal=TERM', job_id[0]], check=True, timeout=30)
    out = _finish(proc, job_name, 120)

    assert 'stopped on request (SIGTERM) after saving a checkpoint' in out
    stopped_at = _losses(work_dir)[-1][0]
    assert 3 <= stopped_at < total
    latest = Path((work_dir / 'last_checkpoint').read_text().strip())
    assert latest.name == f'iter_{stopped_at}.pth' and latest.is_file()

    out = _finish(_slurm_train(partition, job_name, work_dir, epochs, '--resume'), job_name, 240)
    assert f'resumed from the latest checkpoint {latest}' in out
    iters = [it for it, _ in _losses(work_dir)]
    # the first run's iterations, then N+1..end from the resumed one: each trained exactly once
    assert iters == list(range(1, total + 1)), iters


def test_linear_probe_through_mim_slurm_train_sh(partition, tmp_path):
    """The evaluation launcher on Slurm: 2 tasks load a pretrained MAE checkpoint's backbone and train the probe."""
    from mmengine.config import Config

    from mimlab.registry import MODELS

    mae = MODELS.build(Config.fromfile(str(ROOT / DEMO)).model)
    mae.init_weights()
    pretrained = tmp_path / 'mae.pth'
    torch.save({'meta': {}, 'state_dict': mae.state_dict()}, pretrained)
    work_dir = tmp_path / 'probe'
    job_name = f'mimlab-test-probe-{os.getpid()}'
    env = dict(os.environ, GPUS=str(RANKS), GPUS_PER_NODE=str(RANKS), CPUS_PER_TASK='1', PYTHON=sys.executable)
    env.update(OMP_NUM_THREADS='1', JOB_NAME=job_name)
    env.pop('MASTER_PORT', None)
    proc = subprocess.Popen(
        [
            'bash',
            'tools/benchmarks/classification/mim_slurm_train.sh',
            partition,
            'configs/demo/vit-test-p4_linear-1xb128-coslr-20e_builtin-32px.py',
            str(pretrained),
            '--work-dir',
            str(work_dir),
            '--cfg-options',
            'train_cfg.max_epochs=3',  # the recipe warms up for 2 epochs
            'train_cfg.val_interval=3',
            'train_dataloader.dataset.num_samples=256',
            'val_dataloader.dataset.num_samples=64',
            'train_dataloader.num_workers=1',
            'val_dataloader.num_workers=1',
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = _finish(proc, job_name, 240)
    assert 'Distributed training: True' in out and f'GPU number: {RANKS}' in out
    assert f'load backbone. in model from: {pretrained}' in out  # mmengine's Pretrained init, on the tasks
    assert 'accuracy/top1' in out and (work_dir / 'epoch_3.pth').is_file()
