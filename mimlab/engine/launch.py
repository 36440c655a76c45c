"""What ``tools/train.py`` and ``tools/test.py`` do, as functions the tests call directly.

The tools only parse arguments; everything else happens here, in this order: merge the flags into the config
(:func:`merge_train_args` / :func:`merge_test_args`), then :func:`build_runner`, which initialises the process group
itself (:func:`setup_distributed`) before mmengine's ``Runner`` would try to, because mmengine's launchers need CUDA.
"""

import datetime
import os
import os.path as osp
import warnings

import torch
from mmengine.config import Config
from mmengine.runner import Runner
from torch.nn.parallel import DistributedDataParallel

from mimlab.engine.config_checks import (
    add_vis_backend,
    check_cfg_options,
    check_schedule,
    convert_sync_bn,
    normalize_vis_backends,
)
from mimlab.engine.hooks import StreamedDatasetHook, TrainStateHook
from mimlab.engine.parallel import ShardedCheckpointHook
from mimlab.registry import MODEL_WRAPPERS, RUNNERS
from mimlab.utils import init_dist

__all__ = [
    'merge_train_args',
    'merge_test_args',
    'setup_distributed',
    'resolve_amp',
    'build_runner',
    'import_components',
    'check_test_checkpoint',
]


def resolve_amp(cfg: Config, warn: bool = True) -> None:
    """Pick the precision of an ``AmpOptimWrapper`` recipe for this machine, in place.

    - CUDA with bf16 support: ``dtype='bfloat16'`` and no loss scaling (bf16 has fp32's exponent range, and a
      GradScaler would only add an inf check, a host sync, to every step).
    - CUDA without bf16, or ``dtype='float16'`` requested: fp16 with ``loss_scale='dynamic'`` unless set.
    - No CUDA: warn and train in fp32 with a plain ``OptimWrapper`` (mmengine's ``AmpOptimWrapper`` asserts a GPU).
    - CUDA and a sharded model (``FullyShardWrapper``): bf16 through FSDP2's ``MixedPrecisionPolicy`` (fp32 gradient
      reduction) and a plain ``OptimWrapper``; fp16 is refused.

    Configs that are not AMP are left alone. ``warn=False`` skips the warning (``tools/test.py``: evaluation does not
    train, so the training precision is beside the point).
    """
    ow = cfg.get('optim_wrapper')
    if ow is None or ow.get('type') != 'AmpOptimWrapper':
        return
    wrapper = cfg.get('model_wrapper_cfg') or {}
    if torch.cuda.is_available() and wrapper.get('type') in ('FullyShardWrapper', 'mimlab.FullyShardWrapper'):
        _sharded_amp(cfg, ow, wrapper)
        return
    if not torch.cuda.is_available():
        if warn:
            warnings.warn(
                'mixed precision (AmpOptimWrapper) needs a GPU and this machine has none: training in fp32 instead',
                stacklevel=2,
            )
        ow['type'] = 'OptimWrapper'
        ow.pop('loss_scale', None)
        ow.pop('dtype', None)
        return
    if ow.get('dtype') is None and torch.cuda.is_bf16_supported():
        ow['dtype'] = 'bfloat16'
    if ow.get('dtype') in ('bfloat16', torch.bfloat16):
        # mmengine has no "no scaler" switch; a disabled GradScaler makes scale/unscale/step plain pass-throughs
        ow['loss_scale'] = dict(enabled=False)
    else:
        ow.setdefault('loss_scale', 'dynamic')


def _sharded_amp(cfg: Config, ow, wrapper) -> None:
    """AMP under FSDP2 sharding is FSDP2's ``MixedPrecisionPolicy``: bf16 weights gathered and computed with, fp32
    gradient reduction, fp32 master weights and optimizer state; a plain ``OptimWrapper`` (no autocast, no scaler)."""
    dtype = ow.get('dtype') or ('bfloat16' if torch.cuda.is_bf16_supported() else 'float16')
    if dtype in ('float16', torch.float16):
        raise ValueError(
            'optim_wrapper: fp16 mixed precision with FullyShardWrapper would need a sharded loss scaler, which mimlab '
            "does not have; use bf16 (optim_wrapper.dtype='bfloat16', GPUs from A100 on) or train in fp32"
        )
    wrapper.setdefault('mixed_precision', dict(param_dtype='bfloat16', reduce_dtype='float32'))
    cfg.model_wrapper_cfg = wrapper
    ow['type'] = 'OptimWrapper'
    ow.pop('loss_scale', None)
    ow.pop('dtype', None)


def _apply_common(cfg: Config, args) -> None:
    """Flags shared by train.py and test.py: work dir and launcher."""
    if getattr(args, 'work_dir', None):
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.launcher = getattr(args, 'launcher', 'none')


def _dataloader_defaults(cfg: Config) -> None:
    """mmpretrain's dataloader defaults, each overridable by the config; pinning only where there is a GPU."""
    cuda = torch.cuda.is_available()
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader is None:
            continue
        loader.setdefault('collate_fn', dict(type='mimlab.default_collate'))
        loader.setdefault('pin_memory', cuda)
        if loader.get('num_workers', 0) > 0:
            loader.setdefault('persistent_workers', True)
        else:
            # torch's DataLoader refuses persistent workers without workers (e.g. `num_workers=0` for debugging)
            loader['persistent_workers'] = False


def merge_train_args(cfg: Config, args) -> Config:
    """Apply ``tools/train.py``'s flags to ``cfg`` the way mmpretrain's train.py does.

    Args:
        cfg: The loaded config; changed in place.
        args: Parsed arguments with ``config``, ``work_dir``, ``resume`` (None, ``'auto'`` for a bare ``--resume``,
            or a path), ``amp``, ``auto_scale_lr``, ``no_validate``, ``cfg_options``, ``launcher`` and optionally
            ``vis_backend`` (a list of tracker names).

    Returns:
        ``cfg``. ``--cfg-options`` are merged after the other flags, so they win; the dataloader defaults and the
        AMP precision are filled in afterwards, so they see the final values. Without a GPU, SyncBN norms become
        BN (:func:`~mimlab.engine.config_checks.convert_sync_bn`). No file is read here: ``tools/train.py`` then
        calls :func:`~mimlab.engine.config_checks.check_run_files`.

    Raises:
        ValueError: ``--auto-scale-lr`` for a config without ``auto_scale_lr.base_batch_size``; a top-level
            ``--cfg-options`` key no run reads (:func:`~mimlab.engine.config_checks.check_cfg_options`); a
            scheduler that begins where the run ends (:func:`~mimlab.engine.config_checks.check_schedule`).
        ImportError: ``vis_backend`` names a tracker whose package is missing.
    """
    _apply_common(cfg, args)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
    if args.resume == 'auto':
        # mmengine then resumes from the checkpoint named in work_dir/last_checkpoint (or starts afresh)
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        # not cfg.setdefault(...)[...] = ...: for a missing key Config stores a copy of the default
        cfg.auto_scale_lr = dict(cfg.get('auto_scale_lr') or {}, enable=True)
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if getattr(args, 'vis_backend', None):
        add_vis_backend(cfg, args.vis_backend)
    if args.cfg_options:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    normalize_vis_backends(cfg)
    check_schedule(cfg)
    convert_sync_bn(cfg)
    auto_scale_lr = cfg.get('auto_scale_lr') or {}
    if auto_scale_lr.get('enable') and 'base_batch_size' not in auto_scale_lr:
        raise ValueError(
            f'--auto-scale-lr: {args.config} sets no auto_scale_lr.base_batch_size (the total batch size its lr is '
            'meant for); add it with --cfg-options auto_scale_lr.base_batch_size=N'
        )
    _drop_disabled_hooks(cfg)
    _dataloader_defaults(cfg)
    resolve_amp(cfg)
    return cfg


def _drop_disabled_hooks(cfg: Config) -> None:
    """Remove ``default_hooks`` entries set to None that mmengine does not know (e.g. ``nan_guard=None``).

    mmengine's runner accepts None only for its own default hooks (it then leaves them out) and asserts on others.
    """
    mmengine_defaults = {'runtime_info', 'timer', 'sampler_seed', 'logger', 'param_scheduler', 'checkpoint'}
    hooks = cfg.get('default_hooks') or {}
    for name in [n for n, hook in hooks.items() if hook is None and n not in mmengine_defaults]:
        hooks.pop(name)


def merge_test_args(cfg: Config, args) -> Config:
    """Apply ``tools/test.py``'s flags to ``cfg``: evaluate ``args.checkpoint``.

    Args:
        cfg: The loaded config; changed in place.
        args: Parsed arguments with ``config``, ``checkpoint``, ``work_dir``, ``cfg_options``, ``launcher`` and
            optionally ``out`` / ``out_item``. ``out`` with ``out_item='pred'`` (the default) adds mmengine's
            ``DumpResults`` to the test evaluator, which pickles every sample's prediction; ``out_item='metrics'``
            is written by the caller from ``runner.test()``'s return value.

    Returns:
        ``cfg``.

    Raises:
        ValueError: ``out`` for predictions is not a ``.pkl`` file, or the test loop makes no per-sample predictions.
    """
    _apply_common(cfg, args)
    cfg.load_from = args.checkpoint
    if args.cfg_options:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    convert_sync_bn(cfg)
    wrapper = cfg.get('model_wrapper_cfg') or {}
    if wrapper.get('type') in ('FullyShardWrapper', 'mimlab.FullyShardWrapper'):
        wrapper.setdefault('init_weights', False)  # evaluation: the checkpoint replaces the weights
    out, out_item = getattr(args, 'out', None), getattr(args, 'out_item', None) or 'pred'
    if out and out_item == 'pred':
        if not out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {out}: predictions are pickled, so the file must end in .pkl or .pickle')
        if (cfg.get('test_cfg') or {}).get('type') == 'KNNTestLoop':
            raise ValueError('KNNTestLoop makes no per-sample predictions to dump; use --out-item metrics')
        evaluators = cfg.get('test_evaluator') or []
        evaluators = [evaluators] if isinstance(evaluators, dict) else list(evaluators)
        cfg.test_evaluator = [*evaluators, dict(type='DumpResults', out_file_path=out)]
    _dataloader_defaults(cfg)
    resolve_amp(cfg, warn=False)
    return cfg


def setup_distributed(cfg: Config) -> None:
    """Initialise the process group for ``cfg.launcher`` ('pytorch' or 'slurm'); a no-op for 'none'.

    Works without CUDA (gloo). On such machines it also gives the config a DDP wrapper with ``device_ids=None``:
    mmengine passes ``device_ids=[LOCAL_RANK]`` to DDP, both when it builds the default wrapper and as a default
    argument of a configured one, and DDP rejects device ids for a module on the CPU.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none':
        return
    os.environ.setdefault('LOCAL_RANK', '0')  # mmengine reads it when wrapping the model
    dist_cfg = dict((cfg.get('env_cfg') or {}).get('dist_cfg') or {})
    backend = dist_cfg.pop('backend', None)
    if 'timeout' in dist_cfg:  # seconds in the config, as mmengine's own set-up reads them
        dist_cfg['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    init_dist(launcher, backend=backend, **dist_cfg)
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is not None and wrapper.get('type') in MODEL_WRAPPERS.module_dict:
        # mimlab's own wrappers (FullyShardWrapper): mmengine's wrap_model looks the type up in its root registry
        # without the default scope, so it is named with its scope
        wrapper['type'] = f'mimlab.{wrapper["type"]}'
    if torch.cuda.is_available():
        return
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False),
    )
    wrapper_type = MODEL_WRAPPERS.get(wrapper.get('type', 'MMDistributedDataParallel'))
    if isinstance(wrapper_type, type) and issubclass(wrapper_type, DistributedDataParallel):
        wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def import_components() -> None:
    """Import every package that registers mimlab's components (the engine's own register with this package);
    :func:`mimlab.apis.register_all_modules` does this and also sets the default scope."""
    import mimlab.datasets  # noqa: F401
    import mimlab.evaluation  # noqa: F401
    import mimlab.models  # noqa: F401
    import mimlab.structures  # noqa: F401
    import mimlab.visualization  # noqa: F401


def _streamed_loaders(cfg: Config) -> list[str]:
    """The dataloaders whose dataset is a streamed (iterable) one; their ``sampler`` is set to None in place.

    torch's ``DataLoader`` refuses a sampler for an ``IterableDataset`` (the dataset orders itself), and mmengine
    builds the config's sampler for any dataset: so a recipe switches to shards by changing only its ``dataset``.
    """
    from mimlab.datasets.streaming import StreamedDataset
    from mimlab.registry import DATASETS

    found = []
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = (cfg.get(key) or {}).get('dataset') or {}
        kind = dataset.get('type') if isinstance(dataset, dict) else None
        cls = DATASETS.get(kind) if isinstance(kind, str) else kind
        if isinstance(cls, type) and issubclass(cls, StreamedDataset):
            cfg[key]['sampler'] = None
            found.append(key)
    return found


def _sharded_ema(cfg: Config) -> None:
    """Under ``FullyShardWrapper``, a config's ``EMAHook`` (which deep-copies the model, refused by FSDP2) becomes
    :class:`~mimlab.engine.parallel.ShardedEMAHook`: the same arguments, the average kept as shards."""
    wrapper = cfg.get('model_wrapper_cfg') or {}
    if wrapper.get('type') not in ('FullyShardWrapper', 'mimlab.FullyShardWrapper'):
        return
    for hook in cfg.get('custom_hooks') or []:
        if isinstance(hook, dict) and hook.get('type') in ('EMAHook', 'mmengine.EMAHook'):
            hook['type'] = 'ShardedEMAHook'


def build_runner(cfg: Config) -> Runner:
    """Register mimlab's modules, set up the process group, and build the runner ``cfg`` names.

    ``Runner.from_cfg``, or ``RUNNERS.build`` when the config sets ``runner_type`` (e.g. ``FlexibleRunner``), with a
    :class:`~mimlab.engine.hooks.TrainStateHook` (RNG states in checkpoints, wrapper prefixes kept out of their keys)
    whatever loop the config names.
    """
    import_components()  # the config's default_scope='mimlab' makes the runner set the scope
    setup_distributed(cfg)
    _sharded_ema(cfg)
    streamed = _streamed_loaders(cfg)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    if 'train_dataloader' in streamed and not any(isinstance(h, StreamedDatasetHook) for h in runner.hooks):
        runner.register_hook(StreamedDatasetHook())
    # mimlab's train loops register it too; here it also serves a config that names mmengine's loops
    # (type='EpochBasedTrainLoop'), whose checkpoints then still have plain keys (compiled / wrapped models)
    if not any(isinstance(h, TrainStateHook) for h in runner.hooks):
        runner.register_hook(TrainStateHook())
    # sharded (FSDP2) checkpoints: saved shard-wise, and loaded into sharded, DDP or single-process models
    if not any(isinstance(h, ShardedCheckpointHook) for h in runner.hooks):
        runner.register_hook(ShardedCheckpointHook())
    return runner


def check_test_checkpoint(cfg: Config, checkpoint: str) -> None:
    """Refuse to evaluate a classifier from a checkpoint without a trained head.

    Evaluating a pretraining checkpoint with a classification config would silently report chance accuracy (the head
    keeps its random init): a common mistake (mmselfsup issue #724). A k-NN test loop needs no head.
    """
    if cfg.model.get('type') != 'ImageClassifier' or cfg.get('test_cfg', {}).get('type') == 'KNNTestLoop':
        return
    from mimlab.utils import load_checkpoint_weights_only

    state = load_checkpoint_weights_only(checkpoint)
    if state.get('sharded_state') is not None:  # FSDP2 checkpoint: the keys are in its shards' metadata
        from torch.distributed.checkpoint import FileSystemReader

        shard_dir = os.path.join(os.path.dirname(checkpoint), state['sharded_state']['dir'])
        keys = FileSystemReader(shard_dir).read_metadata().state_dict_metadata
        state = {k.removeprefix('state_dict.'): None for k in keys if k.startswith('state_dict.')}
    state = state.get('state_dict', state)
    if not any(k.startswith('head.') for k in state):
        raise RuntimeError(
            f'{checkpoint} has no head.* weights: it looks like a pretraining checkpoint. Evaluating it with a '
            'classification config would report chance accuracy. Train a linear probe or fine-tune first '
            '(tools/benchmarks/classification/mim_dist_train.sh CONFIG PRETRAIN), or use a KNNTestLoop config.'
        )
