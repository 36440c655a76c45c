"""End to end on the built-in dataset, on CPU, with the real demo recipes (a few minutes).

The demo MAE pretraining, then the demo linear probe through ``mim_dist_train.sh``: the pretrained encoder must beat
the same encoder at random initialisation by at least 10 points of top-1. The k-NN test loop runs through
``tools/test.py`` on the same checkpoint. The demo A2MIM pretraining on the grey built-in images, then the demo
RSB-style fine-tuning of its ResNet through ``mim_dist_train.sh`` (LAMB, BCE on Mixup/CutMix targets, RandAugment, EMA):
it must beat the same recipe from random initialisation.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mimlab.utils.checkpoint import load_checkpoint_weights_only

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN_CFG = 'configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py'
PROBE_CFG = 'configs/demo/vit-test-p4_linear-1xb128-coslr-20e_builtin-32px.py'
KNN_CFG = 'configs/demo/mae_vit-test-p4_knn_builtin-32px.py'
A2MIM_CFG = 'configs/demo/a2mim_resnet-test-l3_1xb64-coslr-40e_builtin-grey-64px.py'
RSB_FT_CFG = 'configs/demo/resnet-test_ft-rsb-1xb64-lamb-coslr-10e_builtin-grey-64px.py'

pytestmark = pytest.mark.slow


def run(args, **env):
    proc = subprocess.run(
        args, cwd=ROOT, env=dict(os.environ, PYTHON=sys.executable, **env), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f'{args}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout + proc.stderr


def last_top1(log: str) -> float:
    found = re.findall(r'accuracy/top1: ([0-9.]+)', log)
    assert found, log[-2000:]
    return float(found[-1])


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
    work = tmp_path_factory.mktemp('demo_mae')
    run([sys.executable, 'tools/train.py', PRETRAIN_CFG, '--work-dir', str(work)])
    return work / 'epoch_30.pth'


def pretrained_and_random(cfg, pretrained, work, port):
    """Train ``cfg`` from ``pretrained`` through ``mim_dist_train.sh`` and from random init through ``tools/train.py``
    at once, one thread each, and return the two logs. On a 2-core machine that takes about half the time of running
    them one after the other (the torchrun-launched one gets OMP_NUM_THREADS=1 from mmengine anyway)."""
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1', GPUS='1', PORT=port)
    launcher = 'tools/benchmarks/classification/mim_dist_train.sh'
    pre = ['bash', launcher, cfg, str(pretrained), '--work-dir', f'{work}/pre']
    rand = [sys.executable, 'tools/train.py', cfg, '--work-dir', f'{work}/rand']
    commands = (pre, rand + ['--cfg-options', 'model.backbone.init_cfg=None'])
    procs = [
        subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for args in commands
    ]
    logs = []
    try:
        for proc in procs:
            log = proc.communicate(timeout=900)[0]
            assert proc.returncode == 0, f'{proc.args}:\n{log[-3000:]}'
            logs.append(log)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return logs


def test_linear_probe_of_pretrained_beats_random_init(pretrained, tmp_path):
    logs = pretrained_and_random(PROBE_CFG, pretrained, tmp_path, '29641')
    pre_top1, rand_top1 = last_top1(logs[0]), last_top1(logs[1])
    print(f'linear probe top-1: pretrained {pre_top1:.1f}, random init {rand_top1:.1f}')
    assert pre_top1 >= rand_top1 + 10


def test_knn_through_tools_test(pretrained, tmp_path):
    log = run([sys.executable, 'tools/test.py', KNN_CFG, str(pretrained), '--work-dir', str(tmp_path)])
    top1 = float(re.findall(r'knn/top1=([0-9.]+)', log)[-1])
    assert 10.0 < top1 <= 100.0


def test_linear_probe_with_two_cpu_processes(pretrained, tmp_path):
    log = run(
        [
            'bash',
            'tools/benchmarks/classification/mim_dist_train.sh',
            PROBE_CFG,
            str(pretrained),
            '--work-dir',
            str(tmp_path),
            '--cfg-options',
            'train_cfg.max_epochs=3',
            'train_cfg.val_interval=3',
            'train_dataloader.dataset.num_samples=512',
            'val_dataloader.dataset.num_samples=200',
        ],
        GPUS='2',
        PORT='29643',
    )
    assert 'Distributed training: True' in log and (tmp_path / 'epoch_3.pth').exists()
    assert last_top1(log) > 0


def test_a2mim_resnet_finetune_beats_random_init_through_mim_dist_train(tmp_path):
    """The A2MIM half of the demo end to end: 40 pretraining epochs on the grey built-in images, then the RSB-style
    fine-tuning of the encoder (LAMB, BCE on Mixup/CutMix targets, RandAugment, weight EMA) through the benchmark
    launcher, and the same recipe from random init at the same time. The A2MIM weights load into the backbone, the EMA
    weights are validated and saved, and fine-tuning from them beats random init by at least 3 points of top-1
    (measured on 2 cores: 75.1 vs 64.6 at this seed, gains of 4.8-10.5 over seeds 0-4; docs/a2mim.md)."""
    run([sys.executable, 'tools/train.py', A2MIM_CFG, '--work-dir', str(tmp_path / 'a2mim')])
    ckpt = tmp_path / 'a2mim/epoch_40.pth'
    pre_log, rand_log = pretrained_and_random(RSB_FT_CFG, ckpt, tmp_path, '29645')
    assert f'load backbone. in model from: {ckpt}' in pre_log
    assert 'unexpected key in source state_dict: mask_token, mask_gamma' in pre_log  # the rest matched the ResNet
    pre_top1, rand_top1 = last_top1(pre_log), last_top1(rand_log)
    print(f'RSB-style fine-tuning top-1: A2MIM-pretrained {pre_top1:.1f}, random init {rand_top1:.1f}')
    assert pre_top1 >= rand_top1 + 3
    final = load_checkpoint_weights_only(str(tmp_path / 'pre/epoch_10.pth'))
    assert int(final['ema_state_dict']['steps']) == 10 * 32
