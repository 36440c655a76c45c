"""A newcomer's path (issue 22): the papers' config paths and launchers, CPU launches of SyncBN recipes, clear
answers to common mistakes, runs that never replace an earlier run's checkpoints, Ctrl-C, the classifier's tensor
mode, ``mmcls2timm.py --check`` on any ViT, and experiment trackers. Real processes (torchrun over gloo with two
processes where a launcher is involved) on tiny settings: a few iterations each."""

import os
import signal
import subprocess
import sys
import time
import warnings
from argparse import Namespace
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mimlab.engine.config_checks import check_cfg_options, check_schedule
from mimlab.engine.config_paths import (
    MMSELFSUP_RENAMED,
    OPENMIXUP_A2MIM,
    OPENMIXUP_FINETUNE,
    ConfigPathError,
    config_path_for,
)
from mimlab.engine.launch import merge_test_args
from mimlab.utils import NotACheckpointError, check_checkpoint_file

ROOT = Path(__file__).resolve().parents[1]
DEMO = 'configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py'
LINEAR = 'configs/demo/vit-test-p4_linear-1xb128-coslr-20e_builtin-32px.py'
KNN = 'configs/demo/mae_vit-test-p4_knn_builtin-32px.py'
# 128 images / batch 64 = 2 iterations per epoch; 2 epochs (the demo's warmup is 1 epoch)
TINY = [
    'train_dataloader.num_workers=0',
    'train_dataloader.dataset.num_samples=128',
    'train_cfg.max_epochs=2',
    'default_hooks.logger.interval=1',
]


def free_port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def run(args, check=True, env=None, cwd=ROOT, timeout=300):
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT), **(env or {}))
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return proc


def train(work_dir, *extra, check=True, options=()):
    return run(
        [sys.executable, 'tools/train.py', DEMO, '--work-dir', str(work_dir), *extra, '--cfg-options', *TINY, *options],
        check=check,
    )


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    """One tiny demo MAE run (2 epochs): its work dir, with epoch_1.pth, epoch_2.pth and last_checkpoint."""
    work = tmp_path_factory.mktemp('demo') / 'run'
    train(work)
    return work


# --- 3. the papers' config paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    'upstream, recipe',
    [
        # PixMIM README (mmselfsup 1.x): pretraining and both evaluation configs
        (
            'configs/selfsup/pixmim/pixmim_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
            'pixmim/pixmim_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
        ),
        (
            'configs/selfsup/pixmim/classification/vit-base-p16_linear-8xb2048-coslr-torchvision-transform-90e_in1k.py',
            'pixmim/benchmarks/vit-base-p16_linear-8xb2048-coslr-torchvision-transform-90e_in1k.py',
        ),
        (
            'configs/selfsup/pixmim/classification/vit-base-p16_ft-8xb128-coslr-100e_in1k.py',
            'pixmim/benchmarks/vit-base-p16_ft-8xb128-coslr-100e_in1k.py',
        ),
        # A2MIM README (openmixup) and the A2MIM repo's own layout
        (
            'configs/openmixup/pretrain/a2mim/imagenet/r50_l3_sz224_init_8xb256_cos_ep300.py',
            'a2mim/a2mim_resnet50-l3_8xb256-coslr-300e_in1k.py',
        ),
        (
            'configs/selfsup/a2mim/imagenet/r50_l3_sz224_init_8xb256_cos_ep300.py',
            'a2mim/a2mim_resnet50-l3_8xb256-coslr-300e_in1k.py',
        ),
        (  # the A2MIM README's fine-tuning command (tools/dist_train_ft_8gpu.sh)
            'configs/openmixup/finetune/imagenet/r50_rsb_a3_ft_sz160_4xb512_cos_fp16_ep100.py',
            'a2mim/benchmarks/resnet50_4xb512-rsb-a3-amp-coslr-100e_in1k-160px.py',
        ),
        (
            'configs/benchmarks/classification/imagenet/vit_base_p16_swin_ft_simmim_sz224_4xb128_accu2_cos_ep100.py',
            'a2mim/benchmarks/vit-base-p16_4xb128-accu2-amp-coslr-100e_in1k.py',
        ),
        # mmselfsup 0.x benchmarks, mmselfsup 1.x MAE / MixMIM names that mmpretrain renamed
        (
            'configs/benchmarks/classification/imagenet/vit-base-p16_linear-8xb2048-coslr-90e_in1k.py',
            'mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py',
        ),
        (
            'configs/selfsup/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
            'mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
        ),
        (
            'configs/selfsup/mixmim/mixmim-base-p16_16xb128-coslr-300e_in1k.py',
            'mixmim/mixmim_mixmim-base_16xb128-coslr-300e_in1k.py',
        ),
    ],
)
def test_upstream_paths_map_to_the_same_recipe(upstream, recipe):
    resolved, message = config_path_for(upstream)
    assert resolved == (ROOT / 'configs' / recipe).as_posix()
    assert message.startswith(f"{upstream} is an upstream path: running the same recipe as mimlab's ")
    assert message.endswith(f'configs/{recipe}')


def test_mapping_tables_name_existing_recipes_and_mmpretrain_paths_are_verbatim():
    for recipe in [*OPENMIXUP_A2MIM.values(), *OPENMIXUP_FINETUNE.values(), *MMSELFSUP_RENAMED.values()]:
        assert (ROOT / 'configs' / recipe).is_file(), recipe
    # mmpretrain's own paths (SimMIM, MixMIM READMEs) are mimlab's: no translation, no note
    path = 'configs/simmim/simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py'
    assert config_path_for(path) == (path, None)


def test_unknown_path_lists_the_nearest_recipes():
    with pytest.raises(ConfigPathError, match='nearest recipes: configs/pixmim/pixmim_vit-base-p16_8xb512-amp-coslr'):
        config_path_for('configs/selfsup/pixmim/pixmim_vit-base-p16_8xb512-amp-coslr-900e_in1k.py')


def test_unknown_path_through_two_processes_is_printed_once():
    proc = run(
        [
            'bash',
            'tools/dist_train.sh',
            'configs/selfsup/pixmim/pixmim_vit-base-p16_8xb512-amp-coslr-900e_in1k.py',
            '2',
        ],
        check=False,
        env=dict(PORT=free_port()),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert out.count('does not exist, and no mimlab recipe corresponds to it; nearest recipes:') == 1, out
    assert 'FileNotFoundError' not in out and 'tools/train.py", line' not in out, out  # no per-rank traceback


def test_upstream_a2mim_path_runs_on_two_cpu_processes_with_syncbn_as_bn(tmp_path):
    """The A2MIM README's command verbatim (2 processes instead of 8): the openmixup path runs mimlab's ResNet-50
    recipe, whose SyncBN becomes BN on these GPU-less processes. To stay within seconds ImageNet is replaced by an
    8-image folder tree and ResNet-50 by mimlab's one-block-per-stage ResNet (4 iterations at 224 px)."""
    data = tmp_path / 'data'
    run([sys.executable, 'tools/misc/make_builtin_dataset.py', str(data), '--num-train', '8', '--num-val', '2'])
    proc = run(
        [
            'bash',
            'tools/dist_train.sh',
            'configs/openmixup/pretrain/a2mim/imagenet/r50_l3_sz224_init_8xb256_cos_ep300.py',
            '2',
            '--work-dir',
            str(tmp_path / 'work'),
            '--cfg-options',
            f'train_dataloader.dataset.data_root={data}',
            'train_dataloader.dataset.ann_file=',
            'train_dataloader.batch_size=2',
            'train_dataloader.num_workers=0',
            'model.backbone.depth=test',
            'train_cfg.max_epochs=2',
            'param_scheduler.0.end=1',
            'param_scheduler.1.begin=1',
            'default_hooks.logger.interval=1',
        ],
        env=dict(PORT=free_port()),
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    recipe = 'configs/a2mim/a2mim_resnet50-l3_8xb256-coslr-300e_in1k.py'
    assert out.count("is an upstream path: running the same recipe as mimlab's") == 1, out[-3000:]
    assert recipe in out
    assert out.count('this process has no GPU and SyncBatchNorm needs one') == 1, out[-3000:]
    assert 'model.backbone.norm_cfg.type=SyncBN replaced by plain BN' in out
    assert (tmp_path / 'work' / 'epoch_2.pth').is_file()
    state = torch.load(tmp_path / 'work' / 'epoch_2.pth', weights_only=True, map_location='cpu')['state_dict']
    assert 'backbone.bn1.running_mean' in state  # same keys as with SyncBN


def test_dist_train_ft_8gpu_is_the_finetune_launcher(demo_run, tmp_path):
    """openmixup's ``tools/dist_train_ft_8gpu.sh CONFIG PRETRAIN``: mim_dist_train.sh with GPUS defaulting to 8."""
    proc = run(
        [
            'bash',
            'tools/dist_train_ft_8gpu.sh',
            LINEAR,
            str(demo_run / 'epoch_2.pth'),
            '--work-dir',
            str(tmp_path),
            '--cfg-options',
            'train_dataloader.dataset.num_samples=64',
            'train_dataloader.batch_size=32',
            'train_dataloader.num_workers=0',
            'val_dataloader.dataset.num_samples=32',
            'val_dataloader.num_workers=0',
            'train_cfg.max_epochs=2',
            'train_cfg.val_interval=2',
            'param_scheduler.0.end=1',
            'param_scheduler.1.begin=1',
            'default_hooks.checkpoint.interval=2',
        ],
        env=dict(GPUS='2', PORT=free_port()),
    )
    out = proc.stdout + proc.stderr
    assert 'Distributed training: True' in out and 'GPU number: 2' in out, out[-3000:]
    assert f'load backbone. in model from: {demo_run / "epoch_2.pth"}' in out
    assert 'accuracy/top1' in out
    # the linear probe's encoder is frozen: its weights are the pretraining checkpoint's
    probe = torch.load(tmp_path / 'epoch_2.pth', weights_only=True, map_location='cpu')['state_dict']
    pretrain = torch.load(demo_run / 'epoch_2.pth', weights_only=True, map_location='cpu')['state_dict']
    key = 'backbone.layers.3.ffn.layers.1.weight'
    torch.testing.assert_close(probe[key], pretrain[key], rtol=0, atol=0)


# --- 5. clear answers to mistakes ------------------------------------------------------------------------------


def test_cfg_options_typo_and_recipe_variable_are_refused_with_the_names_to_use():
    cfg = Config.fromfile(ROOT / DEMO)
    with pytest.raises(
        ValueError,
        match=r"max_epoch=1: no run reads a top-level key 'max_epoch'; did you mean "
        r'train_cfg\.max_epochs\?',
    ):
        check_cfg_options(cfg, {'max_epoch': 1})
    with pytest.raises(
        ValueError,
        match=r'max_epochs is a variable of the recipe.*set where it is used instead: '
        r'train_cfg\.max_epochs=1',
    ):
        check_cfg_options(cfg, {'max_epochs': 1})
    check_cfg_options(cfg, {'train_cfg.max_epochs': 1, 'sync_bn': 'torch', 'compile': True, 'train_pipeline': []})


def test_cfg_options_typo_stops_the_tool_before_training(tmp_path):
    proc = train(tmp_path, check=False, options=['max_epoch=1'])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: --cfg-options max_epoch=1: no run reads a top-level key 'max_epoch'; did you mean train_cfg.max_epochs?"
    )
    assert not any(tmp_path.iterdir())


def test_warmup_not_shorter_than_the_run_is_explained_in_the_recipes_terms():
    cfg = Config.fromfile(ROOT / DEMO)
    cfg.merge_from_dict({'train_cfg.max_epochs': 1})
    with pytest.raises(ValueError) as err:
        check_schedule(cfg)
    assert str(err.value) == (
        'param_scheduler[1] (CosineAnnealingLR) begins at epoch 1, where the warmup param_scheduler[0] (LinearLR) '
        'ends (warmup_epochs = 1 in the recipe), but the run is train_cfg.max_epochs=1 epochs long: the warmup is '
        'not shorter than the run. Train for more than 1 epochs (--cfg-options train_cfg.max_epochs=2 or more), or '
        'shorten the warmup (--cfg-options param_scheduler.0.end=N param_scheduler.1.begin=N)'
    )
    cfg.merge_from_dict({'train_cfg.max_epochs': 2})
    check_schedule(cfg)


def test_corrupt_and_truncated_checkpoints_are_named_as_such(demo_run, tmp_path):
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(bytes(range(7, 256)) * 4)
    not_one = r'is not a checkpoint \(corrupt or truncated\): '
    with pytest.raises(NotACheckpointError, match=r'garbage\.pth ' + not_one + '996 bytes'):
        check_checkpoint_file(str(garbage))
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes((demo_run / 'epoch_1.pth').read_bytes()[:5000])
    with pytest.raises(NotACheckpointError, match=r'truncated\.pth ' + not_one + 'it starts '):
        check_checkpoint_file(str(truncated))
    check_checkpoint_file(str(demo_run / 'epoch_1.pth'))
    # through the tools: test.py and train.py --resume
    proc = run([sys.executable, 'tools/test.py', KNN, str(garbage)], check=False)
    assert proc.returncode == 2 and 'weights_only' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f'error: {garbage} is not a checkpoint (corrupt or trunc')
    proc = train(tmp_path / 'w', '--resume', str(truncated), check=False)
    assert proc.returncode == 2 and 'is not a checkpoint (corrupt or truncated)' in proc.stderr


def test_resume_with_nothing_to_resume_says_so_and_trains(tmp_path):
    proc = train(tmp_path, '--resume')
    assert f'--resume: nothing to resume in {tmp_path} (no checkpoint there): training from scratch' in proc.stderr
    assert 'Auto resumed from the latest checkpoint None' not in proc.stdout + proc.stderr
    assert (tmp_path / 'epoch_2.pth').is_file()


def test_test_tool_does_not_warn_about_training_precision():
    cfg = Config.fromfile(ROOT / 'configs/mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    args = Namespace(config='x.py', checkpoint='c.pth', work_dir=None, cfg_options=None, launcher='none')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        merge_test_args(cfg, args)
    assert not [w for w in caught if 'fp32' in str(w.message)]
    assert cfg.optim_wrapper.type == 'OptimWrapper'


# --- 2. never replace an earlier run's checkpoints --------------------------------------------------------------


def test_rerun_writes_beside_the_earlier_run_and_resume_continues_it(demo_run, tmp_path):
    work = tmp_path / 'run'
    work.mkdir()
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        (work / name).write_bytes((demo_run / name).read_bytes())
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    before = {p.name: p.read_bytes() for p in work.glob('*.pth')}
    proc = train(work)
    assert (
        f'{work} holds checkpoints of an earlier run: this run writes to {work}-2 instead, the earlier files stay '
        f'(to continue the earlier run, pass --resume with --work-dir {work})'
    ) in proc.stderr
    assert {p.name: p.read_bytes() for p in work.glob('*.pth')} == before
    assert (Path(f'{work}-2') / 'epoch_2.pth').is_file()
    # --resume continues the earlier run in its own dir, and says from where
    proc = train(work, '--resume', options=['train_cfg.max_epochs=3'])
    assert f'--resume: resuming from {work}/epoch_2.pth' in proc.stderr
    assert (work / 'epoch_3.pth').is_file() and not Path(f'{work}-3').exists()


# --- Ctrl-C -----------------------------------------------------------------------------------------------------


def test_ctrl_c_saves_a_checkpoint_and_exits_like_sigterm(tmp_path):
    options = [
        '--cfg-options',
        'train_dataloader.batch_size=16',
        'train_dataloader.num_workers=1',
        'train_dataloader.dataset.num_samples=512',
        'train_cfg.max_epochs=2',
        'default_hooks.logger.interval=1',
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    proc = subprocess.Popen(
        [sys.executable, 'tools/train.py', DEMO, '--work-dir', str(tmp_path), *options],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(tmp_path.glob('*/vis_data/scalars.json')):
        time.sleep(0.2)
    time.sleep(1.0)
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C: the trainer and its loader worker
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    assert 'Ctrl-C: saving a checkpoint after this iteration, then stopping' in out
    assert 'stopped on request (SIGINT) after saving a checkpoint; continue with --resume' in out
    latest = Path((tmp_path / 'last_checkpoint').read_text().strip())
    assert latest.name.startswith('iter_') and latest.is_file()


def test_ctrl_c_on_a_two_process_launch_saves_once_and_every_rank_exits_cleanly(tmp_path):
    """Ctrl-C in the terminal of ``dist_train.sh ... 2``: torchrun and both workers get SIGINT, torchrun passes it
    on again; the workers count both as one press, agree on the iteration, save one checkpoint and exit 0."""
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1', PORT=free_port())
    proc = subprocess.Popen(
        ['bash', 'tools/dist_train.sh', DEMO, '2', '--work-dir', str(tmp_path), '--cfg-options']
        + [
            'train_dataloader.batch_size=8',
            'train_dataloader.num_workers=0',
            'train_dataloader.dataset.num_samples=1024',
        ]
        + ['train_cfg.max_epochs=2', 'default_hooks.logger.interval=1'],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and not list(tmp_path.glob('*/vis_data/scalars.json')):
        time.sleep(0.2)
    time.sleep(1.0)
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert out.count('stopped on request (SIGINT) after saving a checkpoint') == 1, out[-3000:]  # rank 0 logs
    assert 'KeyboardInterrupt' not in out and 'exitcode  : 1' not in out, out[-3000:]
    latest = Path((tmp_path / 'last_checkpoint').read_text().strip())
    assert latest.name.startswith('iter_') and latest.is_file()


def test_second_ctrl_c_aborts_at_once():
    from mimlab.engine.hooks.preemption import SAME_PRESS_S, PreemptionHook

    hook = PreemptionHook()
    previous = signal.getsignal(signal.SIGINT)
    try:
        hook._handler(signal.SIGINT, None)
        hook._handler(signal.SIGINT, None)  # torchrun's copy of the same press: still a clean stop
        assert hook.requested
        time.sleep(SAME_PRESS_S + 0.1)
        with pytest.raises(KeyboardInterrupt, match='second Ctrl-C'):
            hook._handler(signal.SIGINT, None)
    finally:
        signal.signal(signal.SIGINT, previous)


# --- 6. classifier tensor mode, mmcls2timm --check --------------------------------------------------------------


def test_classifier_tensor_mode_returns_the_heads_output():
    from mimlab.apis import get_model

    model = get_model('configs/demo/vit-test-p4_ft-1xb128-coslr-10e_builtin-32px.py').eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
        feats = model.extract_feat(x)
        assert logits.shape == (2, model.head.num_classes)
        torch.testing.assert_close(logits, model.head(feats), rtol=0, atol=0)
        scores = torch.stack([s.pred_score for s in model(x, mode='predict')])
        torch.testing.assert_close(scores, logits.softmax(-1))


def test_classifier_tensor_mode_matches_mmpretrain():
    """Same weights, same input: mmpretrain 1.2.0's ImageClassifier(mode='tensor') gives the same logits."""
    pytest.importorskip('mmpretrain')
    from mmengine.registry import DefaultScope
    from mmpretrain.models import ImageClassifier as RefClassifier

    from mimlab.apis import get_model

    model = get_model('configs/demo/vit-test-p4_ft-1xb128-coslr-10e_builtin-32px.py').eval()
    arch = dict(embed_dims=96, num_layers=4, num_heads=3, feedforward_channels=384)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ref = RefClassifier(
            backbone=dict(
                type='VisionTransformer', arch=arch, img_size=32, patch_size=4, out_type='avg_featmap', final_norm=False
            ),
            head=dict(type='LinearClsHead', num_classes=model.head.num_classes, in_channels=96),
        ).eval()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith('data_preprocessor')}
    ref.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)


def test_mmcls2timm_check_on_the_demo_vit(demo_run, tmp_path):
    pytest.importorskip('timm')
    tool = 'tools/model_converters/mmcls2timm.py'
    proc = run([sys.executable, tool, str(demo_run / 'epoch_2.pth'), str(tmp_path / 'timm.pth'), '--check'])
    assert 'vit: wrote' in proc.stdout and 'timm strict load ok' in proc.stdout  # heads from the checkpoint's cfg
    # without the config in the file, the head count must be given (the tool's --num-heads)
    from mimlab.converters.auto import check_against_timm, to_timm

    state = torch.load(demo_run / 'epoch_2.pth', weights_only=True, map_location='cpu')['state_dict']
    family, timm_state, backbone = to_timm({'state_dict': state})
    with pytest.raises(
        ValueError, match="cannot build timm's ViT for width 96, depth 4: the number of attention heads"
    ):
        check_against_timm(family, backbone, timm_state)
    assert check_against_timm(family, backbone, timm_state, num_heads=3) < 1e-4


# --- 1. the tools find .venv ---------------------------------------------------------------------------------------


def test_tools_find_the_checkouts_venv():
    """``python tools/train.py`` with a Python that lacks the install re-runs itself under ``.venv``."""
    bare = '/usr/bin/python3'
    if not (ROOT / '.venv/bin/python').exists() or not os.path.exists(bare):
        pytest.skip('needs the checkout .venv and a system Python')
    if subprocess.run([bare, '-c', 'import mmengine'], capture_output=True).returncode == 0:
        pytest.skip('the system Python has mmengine: nothing to find')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    proc = subprocess.run([bare, 'tools/train.py', '--help'], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and '--vis-backend' in proc.stdout, proc.stderr[-2000:]


# --- 7. experiment trackers ---------------------------------------------------------------------------------------


def _wandb_history(run_file: Path) -> list[dict]:
    """The history rows of an offline W&B run file (a LevelDB-style log of ``Record`` protobufs after a 7-byte
    header: 32 KiB blocks of chunks with a 7-byte header each, crc32 / length / type FULL=1 FIRST=2 MIDDLE=3
    LAST=4)."""
    import json
    import struct

    from wandb.proto import wandb_internal_pb2

    raw, pos, buf, rows = run_file.read_bytes(), 7, b'', []
    assert raw[:4] == b':W&B'
    while pos + 7 <= len(raw):
        left = 32768 - pos % 32768
        _, length, kind = struct.unpack('<IHB', raw[pos : pos + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:  # block padding
            pos += left
            continue
        buf = raw[pos + 7 : pos + 7 + length] if kind in (1, 2) else buf + raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            if record.WhichOneof('record_type') == 'history':
                rows.append({i.key or '/'.join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
    return rows


def tracked(vis_data: Path) -> dict:
    """What each tracker holds, read back from its files: {backend: (scalar names -> values, image names)}."""
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(vis_data), size_guidance={'images': 0, 'scalars': 0})
    events.Reload()
    tb = ({t: [e.value for e in events.Scalars(t)] for t in events.Tags()['scalars']}, set(events.Tags()['images']))

    (run_file,) = vis_data.glob('wandb/offline-run-*/run-*.wandb')
    rows = _wandb_history(run_file)
    wb_scalars = {}
    for row in rows:
        for k, v in row.items():
            if not k.startswith('_') and '/' not in k or k.startswith(('accuracy/', 'train/')):
                wb_scalars.setdefault(k, []).append(v)
    wb = (wb_scalars, {k.split('/')[0] for row in rows for k in row if k.endswith('/_type') and 'image' in str(row[k])})

    client = MlflowClient(tracking_uri=f'file://{vis_data}')
    (experiment,) = [e for e in client.search_experiments() if e.name == 'Default']
    (ml_run,) = client.search_runs([experiment.experiment_id])
    metrics = {k: [m.value for m in client.get_metric_history(ml_run.info.run_id, k)] for k in ml_run.data.metrics}
    images = {Path(a.path).name for a in client.list_artifacts(ml_run.info.run_id, 'images')}
    return dict(tensorboard=tb, wandb=wb, mlflow=(metrics, images))


TRACKERS = ['--vis-backend', 'tensorboard', '--vis-backend', 'wandb', '--vis-backend', 'mlflow']
TRACKER_ENV = dict(WANDB_MODE='offline', WANDB_SILENT='true')


def test_trackers_get_losses_lr_and_reconstructions(tmp_path, monkeypatch):
    monkeypatch.setenv('MLFLOW_ALLOW_FILE_STORE', 'true')  # reading the store back here, as the run did
    pytest.importorskip('tensorboard')
    pytest.importorskip('wandb')
    pytest.importorskip('mlflow')
    proc = run(
        [sys.executable, 'tools/train.py', DEMO, '--work-dir', str(tmp_path), *TRACKERS, '--cfg-options', *TINY]
        + ['custom_hooks.0.interval=1'],
        env=TRACKER_ENV,
    )
    (vis_data,) = tmp_path.glob('*/vis_data')
    local = [__import__('json').loads(line) for line in (vis_data / 'scalars.json').read_text().splitlines()]
    losses = [r['loss'] for r in local if 'loss' in r]
    lrs = [r['lr'] for r in local if 'lr' in r]
    assert len(losses) == 4, proc.stdout[-2000:]
    for backend, (scalars, images) in tracked(vis_data).items():
        assert scalars['loss'] == pytest.approx(losses, rel=1e-6), backend
        assert scalars['lr'] == pytest.approx(lrs, rel=1e-6), backend
        assert images & {'reconstruction', 'reconstruction_1.png'}, (backend, images)


def test_trackers_get_evaluation_metrics_through_the_launcher(demo_run, tmp_path, monkeypatch):
    monkeypatch.setenv('MLFLOW_ALLOW_FILE_STORE', 'true')
    pytest.importorskip('tensorboard')
    pytest.importorskip('wandb')
    pytest.importorskip('mlflow')
    proc = run(
        ['bash', 'tools/benchmarks/classification/mim_dist_train.sh', LINEAR, str(demo_run / 'epoch_2.pth')]
        + ['--work-dir', str(tmp_path), *TRACKERS, '--cfg-options']
        + [
            'train_dataloader.dataset.num_samples=64',
            'train_dataloader.batch_size=64',
            'train_dataloader.num_workers=0',
        ]
        + ['val_dataloader.dataset.num_samples=32', 'val_dataloader.num_workers=0', 'train_cfg.max_epochs=2']
        + ['train_cfg.val_interval=2', 'param_scheduler.0.end=1', 'param_scheduler.1.begin=1'],
        env=dict(TRACKER_ENV, GPUS='1', PORT=free_port()),
    )
    top1 = float(proc.stdout.split('accuracy/top1: ')[-1].split()[0] if 'accuracy/top1: ' in proc.stdout else 'nan')
    (vis_data,) = tmp_path.glob('*/vis_data')
    for backend, (scalars, _) in tracked(vis_data).items():
        assert scalars['accuracy/top1'] == pytest.approx([top1], abs=1e-3), backend


def test_missing_tracker_package_gets_the_install_command(monkeypatch):
    import importlib.util

    from mimlab.engine.config_checks import add_vis_backend

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'wandb' else real(name, *a))
    with pytest.raises(
        ImportError,
        match=r'--vis-backend wandb needs the wandb package, which is not installed: '
        r'pip install wandb \(or pip install -e \'\.\[trackers\]\' for all three\)',
    ):
        add_vis_backend(Config.fromfile(ROOT / DEMO), ['wandb'])


def test_mixmim_readme_python_gives_logits():
    """The MixMIM README's ``model = get_model('mixmim-base_3rdparty_in1k'); model(torch.rand(1, 3, 224, 224)).shape``
    (without downloading the weights: the shape does not depend on them)."""
    from mimlab.apis import get_model

    model = get_model('mixmim-base_3rdparty_in1k')
    with torch.no_grad():
        assert model(torch.rand(1, 3, 224, 224)).shape == (1, 1000)


def test_vis_backends_from_the_command_line():
    """``--cfg-options visualizer.vis_backends=[LocalVisBackend,tensorboard]`` (names: all a command line can give;
    mmengine's Visualizer would raise TypeError) and ``--vis-backend`` give the same backends."""
    pytest.importorskip('tensorboard')

    from mimlab.engine.launch import merge_train_args

    def merged(*argv):
        import importlib.util

        spec = importlib.util.spec_from_file_location('train_tool', ROOT / 'tools/train.py')
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        args = module.parse_args([DEMO, *argv])
        return merge_train_args(Config.fromfile(ROOT / DEMO), args).visualizer.vis_backends

    by_option = merged('--cfg-options', 'visualizer.vis_backends=[LocalVisBackend,tensorboard]')
    assert by_option == [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
    assert merged('--vis-backend', 'tensorboard') == by_option
