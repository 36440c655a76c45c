"""What ``tools/train.py`` and ``tools/test.py`` do, as functions the tests call directly."""

import os
import os.path as osp
import warnings

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mimlab.registry import RUNNERS
from mimlab.utils import init_dist, register_all_modules

__all__ = [
    'merge_train_args',
    'merge_test_args',
    'setup_distributed',
    'resolve_amp',
    'build_runner',
    'check_test_checkpoint',
]


def resolve_amp(cfg: Config) -> None:
    """Pick the AMP precision for ``AmpOptimWrapper`` recipes: bf16 where the GPU supports it, else fp16 with a
    dynamic loss scale; on a machine without CUDA fall back to fp32 (mmengine's AmpOptimWrapper needs a GPU)."""
    ow = cfg.optim_wrapper
    if ow.get('type') != 'AmpOptimWrapper':
        return
    if not torch.cuda.is_available():
        warnings.warn('AMP needs a GPU; this machine has none, so the run uses fp32 (OptimWrapper)')
        ow['type'] = 'OptimWrapper'
        ow.pop('loss_scale', None)
        ow.pop('dtype', None)
        return
    if ow.get('dtype') is None and torch.cuda.is_bf16_supported():
        ow['dtype'] = 'bfloat16'
    if ow.get('dtype') in ('bfloat16', torch.bfloat16):
        ow.pop('loss_scale', None)  # bf16 has fp32's range: no loss scaling
    else:
        ow.setdefault('loss_scale', 'dynamic')


def _apply_common(cfg: Config, args) -> Config:
    if getattr(args, 'work_dir', None):
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.launcher = args.launcher
    return cfg


def merge_train_args(cfg: Config, args) -> Config:
    """Apply train.py's flags to ``cfg`` (``--cfg-options`` last, so they win)."""
    _apply_common(cfg, args)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', {})['enable'] = True
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    _dataloader_defaults(cfg)
    resolve_amp(cfg)
    return cfg


def _dataloader_defaults(cfg: Config) -> None:
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader is None:
            continue
        loader.setdefault('collate_fn', dict(type='default_collate'))
        loader.setdefault('pin_memory', torch.cuda.is_available())
        if loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False


def merge_test_args(cfg: Config, args) -> Config:
    _apply_common(cfg, args)
    cfg.load_from = args.checkpoint
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    _dataloader_defaults(cfg)
    if cfg.get('optim_wrapper') is not None:
        resolve_amp(cfg)
    return cfg


def setup_distributed(cfg: Config) -> None:
    """Initialise the process group for 'pytorch'/'slurm' launchers ourselves (works without CUDA)."""
    if cfg.launcher == 'none':
        return
    os.environ.setdefault('LOCAL_RANK', '0')
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend')
    init_dist(cfg.launcher, backend=backend)
    if not torch.cuda.is_available():
        # mmengine passes device_ids=[LOCAL_RANK] to DDP (also as a default arg of a configured wrapper), which CPU
        # modules reject: state device_ids=None explicitly
        wrapper = cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False),
        )
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper


def build_runner(cfg: Config) -> Runner:
    register_all_modules(init_default_scope=False)
    setup_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def check_test_checkpoint(cfg: Config, checkpoint: str) -> None:
    """Refuse to evaluate a classifier from a checkpoint without a trained head.

    Evaluating a pretraining checkpoint with a classification config would silently report chance accuracy (the head
    keeps its random init): a common mistake (mmselfsup issue #724). A k-NN test loop needs no head.
    """
    if cfg.model.get('type') != 'ImageClassifier' or cfg.get('test_cfg', {}).get('type') == 'KNNTestLoop':
        return
    from mimlab.utils import load_checkpoint_weights_only

    state = load_checkpoint_weights_only(checkpoint)
    state = state.get('state_dict', state)
    if not any(k.startswith('head.') for k in state):
        raise RuntimeError(
            f'{checkpoint} has no head.* weights: it looks like a pretraining checkpoint. Evaluating it with a '
            'classification config would report chance accuracy. Train a linear probe or fine-tune first '
            '(tools/benchmarks/classification/mim_dist_train.sh CONFIG PRETRAIN), or use a KNNTestLoop config.'
        )
