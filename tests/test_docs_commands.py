"""The fenced commands of ``docs/evaluation.md`` and of the README's quick start run as written.

Every ``bash`` block of the two files is read and each command sorted into one of two kinds:

- Listed in :data:`NOT_RUN`, with the reason: the installers (they download ~5 GB of wheels), ImageNet recipes on 8
  or 16 GPUs or Slurm, and templates with placeholders (``CONFIG``, ``$PRETRAIN``).
- Everything else, CPU-sized (the demo recipes on the built-in dataset and tools on their output): run in order,
  in a scratch folder that holds ``configs/`` and ``tools/`` of this checkout, with ``python`` on PATH being this
  interpreter. To keep the test to seconds, each gets a few ``--cfg-options`` appended that shrink the number of
  images per epoch (:data:`SHRINK`); epochs, file names and paths stay those of the docs, so ``epoch_30.pth`` and
  ``epoch_20.pth`` are written where the next command reads them. A new documented command is therefore run,
  unless it is added to :data:`NOT_RUN` with a reason.
"""

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ['docs/evaluation.md', 'README.md']

# appended to the commands of each demo config: fewer images per epoch, no loader workers
SHRINK = {
    'configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py': [
        'train_dataloader.dataset.num_samples=16',  # 1 iteration of 16 images per epoch, 30 epochs
        'train_dataloader.batch_size=16',
        'train_dataloader.num_workers=0',
    ],
    'configs/demo/vit-test-p4_linear-1xb128-coslr-20e_builtin-32px.py': [
        'train_dataloader.dataset.num_samples=32',  # 1 iteration of 32 images per epoch, 20 epochs
        'train_dataloader.batch_size=32',
        'train_dataloader.num_workers=0',
        'val_dataloader.dataset.num_samples=32',
        'val_dataloader.num_workers=0',
    ],
    'configs/demo/mae_vit-test-p4_knn_builtin-32px.py': [
        'test_dataloader.dataset.num_samples=32',
        'test_cfg.bank_dataloader.dataset.num_samples=64',
    ],
}

NOT_RUN = {
    # installers: pip downloads of the pinned wheels (the demo they end with is evaluation.md's step 1)
    'bash tools/run_demo.sh': 'installs into .venv (network, ~5 GB)',
    'bash tools/run_tests.sh': 'installs into .venv and runs this suite',
    # the test's PATH already puts this interpreter first
    'source .venv/bin/activate': 'the test runs with its own interpreter as python',
    # ImageNet recipes on GPUs / Slurm
    'bash tools/dist_train.sh configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py 8': 'ImageNet, 8 GPUs',
    'GPUS=16 bash tools/slurm_train.sh $PARTITION mae configs/mae/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py': (
        'ImageNet on Slurm'
    ),
    # templates
    'python tools/train.py CONFIG --resume': 'template (CONFIG)',
    'GPUS=8 bash tools/benchmarks/classification/mim_dist_train.sh CONFIG $PRETRAIN --amp': 'template',
    'bash tools/benchmarks/classification/mim_slurm_train.sh $PARTITION CONFIG $PRETRAIN --amp': 'template',
    'GPUS=8 bash tools/benchmarks/classification/mim_dist_test.sh CONFIG work_dirs/.../epoch_90.pth': 'template',
}


def fenced_commands(path: Path) -> list[str]:
    """The commands of the ``bash`` blocks of ``path``: comments dropped, ``\\`` continuations joined."""
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', path.read_text(), flags=re.S):
        joined = re.sub(r'\\\n\s*', '', block)
        for line in joined.splitlines():
            line = line.split(' #')[0].strip() if not line.lstrip().startswith('#') else ''
            if line:
                commands.append(line)
    return commands


def shrunk(command: str) -> str:
    config = next((c for c in SHRINK if c in command), None)
    if config is None:
        return command
    return f'{command} --cfg-options {" ".join(shlex.quote(o) for o in SHRINK[config])}'


def test_documented_commands_run_as_written(tmp_path):
    commands = [c for doc in DOCS for c in fenced_commands(ROOT / doc)]
    to_run = list(dict.fromkeys(c for c in commands if c not in NOT_RUN))  # the README's k-NN line is evaluation.md's
    assert len(to_run) == 5, to_run  # evaluation.md's four, the README's timm conversion

    for name in ('configs', 'tools'):
        (tmp_path / name).symlink_to(ROOT / name)
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    # a wrapper, not a symlink: a venv's interpreter finds its site-packages from the path it is started by
    (bin_dir / 'python').write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    (bin_dir / 'python').chmod(0o755)
    env = dict(
        os.environ,
        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
        PYTHONPATH=str(ROOT),
        OMP_NUM_THREADS='1',
        PORT='29677',
    )
    env.pop('PYTHON', None)
    for command in to_run:
        start = time.time()
        proc = subprocess.run(
            ['bash', '-c', shrunk(command)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, f'{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
        print(f'{time.time() - start:6.1f} s  {command}')
    work = tmp_path / 'work_dirs'
    assert (work / 'mae_vit-test-p4_1xb64-coslr-30e_builtin-32px' / 'epoch_30.pth').is_file()
    assert (work / 'demo_probe_pretrained' / 'epoch_20.pth').is_file()
    assert (work / 'demo_probe_random' / 'epoch_20.pth').is_file()
    assert (work / 'demo_mae_timm.pth').is_file()
    assert 'timm strict load ok' in proc.stdout
