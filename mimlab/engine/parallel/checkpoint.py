"""Sharded checkpoints for FSDP2 runs: each rank writes its own part, written atomically, resumable under any
number of ranks and under DDP, and mergeable into one ordinary ``.pth``.

A checkpoint ``iter_N.pth`` of a sharded run is two things in the work dir:

- ``iter_N.pth.dcp/``: the model weights and the optimizer state, saved with ``torch.distributed.checkpoint``
  (DCP): every rank writes the shards it holds, in parallel, and no rank ever holds the full model;
- ``iter_N.pth``: everything else, as mmengine writes it (meta, message hub, lr schedulers, RNG states), with an
  empty ``state_dict`` and ``sharded_state=dict(dir='iter_N.pth.dcp', ...)`` naming the folder.

Atomic as the other checkpoints: DCP writes into ``iter_N.pth.dcp.partial/``, which rank 0 renames once every rank
has finished; ``iter_N.pth`` is written after that and ``last_checkpoint`` after that, so a job killed at any point
resumes from the previous complete checkpoint.

Loading (:class:`ShardedCheckpointHook`, which :func:`mimlab.engine.build_runner` registers in every run):

- a sharded checkpoint into a sharded model, a DDP model or a single process: DCP reshards to whatever the ranks
  hold now (``--resume`` on fewer or more GPUs);
- an ordinary checkpoint (a DDP run's, a merged one) into a sharded model: the full weights and optimizer state
  are cut into this rank's shards (``set_model_state_dict`` / ``set_optimizer_state_dict``).

:func:`merge_sharded_checkpoint` (``tools/model_converters/merge_sharded_checkpoint.py``) turns a sharded checkpoint
into one ordinary mmengine checkpoint (full ``state_dict`` with the usual keys, optimizer state by index as DDP saves
it, schedulers, meta), which ``mmcls2timm.py``, ``extract_backbone_weights.py``, downstream OpenMMLab repos and a
DDP ``--resume`` read unchanged.
"""

import glob
import os
import os.path as osp
import shutil
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import EMAHook, Hook
from mmengine.model import is_model_wrapper
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from mimlab.engine.hooks.train_state import strip_wrapper_prefixes
from mimlab.registry import HOOKS

from .ema import ShardedEMAHook
from .fsdp import is_sharded

__all__ = [
    'ShardedCheckpointHook',
    'save_sharded_state',
    'load_sharded_state',
    'load_full_state',
    'merge_sharded_checkpoint',
    'shard_dir_of',
]

SUFFIX = '.dcp'


def shard_dir_of(checkpoint_path: str) -> str:
    """The DCP folder that belongs to ``iter_N.pth``: ``iter_N.pth.dcp``."""
    return checkpoint_path + SUFFIX


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


def save_sharded_state(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, checkpoint_path: str, ema_hook: EMAHook | None = None
) -> str:
    """Save the weights (and optimizer state) of ``model`` next to ``checkpoint_path``, every rank its shards.

    With ``ema_hook`` (a :class:`~mimlab.engine.parallel.ShardedEMAHook`) the weight average is saved too, swapped as
    mmengine's ``EMAHook`` swaps it: ``state_dict`` holds the averaged weights, ``ema_state_dict`` the live ones.

    A collective: call it on every rank. Returns the folder, ``checkpoint_path + '.dcp'``, complete when it returns.
    """
    model = _unwrap(model)
    final = shard_dir_of(checkpoint_path)
    partial = final + '.partial'
    if is_main_process() and osp.isdir(partial):
        shutil.rmtree(partial)  # left by a job killed while saving
    if dist.is_initialized():
        dist.barrier()
    state = {'state_dict': get_model_state_dict(model)}
    if ema_hook is not None:
        state['ema_state_dict'] = _ema_state(ema_hook)
        ema_hook._swap_ema_state_dict(state)
    if optimizer is not None:
        state['optimizer'] = get_optimizer_state_dict(model, optimizer)
    dcp.save(state, checkpoint_id=partial)
    if dist.is_initialized():
        dist.barrier()
    if is_main_process():
        if osp.isdir(final):
            shutil.rmtree(final)
        os.replace(partial, final)
    if dist.is_initialized():
        dist.barrier()
    return final


def _ema_state(ema_hook: EMAHook) -> dict:
    """The averaged model's state: DTensor shards from a ShardedEMAHook on a sharded model, else mmengine's."""
    return ema_hook.ema_state_dict() if isinstance(ema_hook, ShardedEMAHook) else ema_hook.ema_model.state_dict()


def load_sharded_state(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, shard_dir: str, ema_hook: EMAHook | None = None
) -> bool:
    """Load a DCP folder written by :func:`save_sharded_state` into ``model`` (sharded, DDP or plain) and, if given,
    ``optimizer``; a collective under a process group.

    With ``ema_hook`` (mmengine's ``EMAHook`` or a :class:`~mimlab.engine.parallel.ShardedEMAHook`) and a checkpoint
    that holds a weight average, the live weights go to the model and the average to the hook's averaged model.

    Returns:
        Whether the weight average was loaded.
    """
    model = _unwrap(model)
    if not osp.isdir(shard_dir):
        raise FileNotFoundError(f'the shards of this checkpoint are missing: no folder {shard_dir}')
    state = {'state_dict': get_model_state_dict(model)}
    saved = dcp.FileSystemReader(shard_dir).read_metadata().state_dict_metadata
    with_ema = ema_hook is not None and any(k.startswith('ema_state_dict.') for k in saved)
    if with_ema:
        state['ema_state_dict'] = _ema_state(ema_hook)
        ema_hook._swap_ema_state_dict(state)  # loaded in place: the average into the hook's tensors
    if optimizer is not None:
        state['optimizer'] = get_optimizer_state_dict(model, optimizer)
    dcp.load(state, checkpoint_id=shard_dir)
    if with_ema:
        ema_hook._swap_ema_state_dict(state)
    set_model_state_dict(model, state['state_dict'])
    if optimizer is not None:
        set_optimizer_state_dict(model, optimizer, state['optimizer'])
    return with_ema


def _param_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The name of each parameter in the optimizer's order (the order its state dict numbers them in)."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group['params']]


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer | None, checkpoint: dict) -> list[str]:
    """Load an ordinary (unsharded) checkpoint dict into a sharded ``model``: every rank keeps its shards of the full
    tensors. ``checkpoint['optimizer']`` (numbered as ``torch.optim`` saves it) is loaded when ``optimizer`` is given.

    Returns:
        The model's keys missing from the checkpoint (loading is not strict, as mmengine's ``load_from``).
    """
    model = _unwrap(model)
    state = strip_wrapper_prefixes(checkpoint['state_dict'])
    result = set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=False))
    if optimizer is not None and 'optimizer' in checkpoint:
        names = _param_names(model, optimizer)
        saved = checkpoint['optimizer']
        numbered = [i for g in saved['param_groups'] for i in g['params']]
        if len(numbered) != len(names):
            raise ValueError(
                f"the checkpoint's optimizer state covers {len(numbered)} parameters, this optimizer has "
                f'{len(names)}: the model or the optimizer config differs from the run that saved it'
            )
        by_name = dict(
            state={names[i]: s for i, s in saved['state'].items()},
            param_groups=[dict(g, params=[names[i] for i in g['params']]) for g in saved['param_groups']],
        )
        set_optimizer_state_dict(model, optimizer, by_name, options=StateDictOptions(full_state_dict=True))
    return list(result.missing_keys)


@HOOKS.register_module()
class ShardedCheckpointHook(Hook):
    """Write and read sharded checkpoints (see the module docstring); a no-op for unsharded models and checkpoints.

    :func:`mimlab.engine.build_runner` registers it in every run, so configs need not name it. mimlab's
    :class:`~mimlab.engine.hooks.AtomicCheckpointHook` calls :meth:`save_shards` on every rank before it saves.
    """

    priority = 'LOWEST'  # after TrainStateHook has fitted the keys of a loaded checkpoint

    def __init__(self):
        self._saved_dir = None

    def before_run(self, runner) -> None:
        if is_sharded(runner.model):
            # FullyShardWrapper initialised the weights and broadcast rank 0's before sharding them; the runner's
            # _init_model_weights would now broadcast DTensors, which c10d cannot do
            runner._init_model_weights = lambda: None

    def before_train(self, runner) -> None:
        """Remove the ``*.dcp.partial`` folders a job killed while saving shards left behind (rank 0)."""
        if not is_main_process():
            return
        folders = {runner.work_dir}
        folders |= {h.out_dir for h in runner.hooks if isinstance(getattr(h, 'out_dir', None), str)}
        for folder in sorted(folders):
            for partial in sorted(glob.glob(osp.join(folder, '*' + SUFFIX + '.partial'))):
                shutil.rmtree(partial, ignore_errors=True)
                runner.logger.info(f'removed {partial}, the shards of a checkpoint whose save was interrupted')

    def save_shards(self, runner, checkpoint_path: str) -> None:
        """Before ``runner.save_checkpoint(...)`` of ``checkpoint_path``, on every rank: write the weights and
        optimizer state of a sharded model to ``checkpoint_path + '.dcp'``."""
        if not is_sharded(runner.model):
            return
        self._saved_dir = save_sharded_state(
            runner.model, runner.optim_wrapper.optimizer, checkpoint_path, _ema_hook(runner)
        )

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not is_sharded(runner.model):
            return
        if self._saved_dir is None:
            raise RuntimeError(
                'a sharded model was saved without its shards: save through AtomicCheckpointHook '
                "(default_hooks.checkpoint=dict(type='AtomicCheckpointHook', ...)), which writes them on every rank"
            )
        checkpoint['state_dict'] = {}  # the mmengine copy holds this rank's DTensor shards only
        checkpoint.pop('optimizer', None)
        checkpoint['sharded_state'] = dict(
            dir=osp.basename(self._saved_dir), path=osp.abspath(self._saved_dir), world_size=get_world_size()
        )
        self._saved_dir = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        sharded = checkpoint.get('sharded_state')
        if sharded is None and not is_sharded(runner.model):
            return  # ordinary checkpoint, ordinary model: mmengine loads it
        resume = bool(getattr(runner, '_resume', False))
        optimizer = runner.optim_wrapper.optimizer if resume and hasattr(runner.optim_wrapper, 'optimizer') else None
        model = _unwrap(runner.model)
        ema_hook = _ema_hook(runner)
        loaded_ema = False
        if sharded is not None:
            # the average only on --resume: loading weights (load_from, test.py), EMAHook averages from them
            loaded_ema = load_sharded_state(model, optimizer, _shard_dir(runner, sharded), ema_hook if resume else None)
            checkpoint.pop('optimizer', None)
        else:
            missing = load_full_state(model, optimizer, checkpoint)
            if missing:
                runner.logger.warning(f'keys of the model missing from the checkpoint: {missing}')
            checkpoint.pop('optimizer', None)
        if isinstance(ema_hook, ShardedEMAHook):
            ema_hook.load_ema(runner, loaded_ema)
        # what mmengine loads next is what the model already holds
        checkpoint['state_dict'] = model.state_dict()


def _ema_hook(runner) -> EMAHook | None:
    """The run's weight-average hook (mmengine's ``EMAHook`` or a subclass), if it has one."""
    return next((h for h in runner.hooks if isinstance(h, EMAHook)), None)


def _shard_dir(runner, sharded: dict) -> str:
    """The DCP folder of the checkpoint the runner is loading: next to that file (found the way mmengine's
    ``load_or_resume`` finds it), else where it was saved."""
    from mmengine.runner import find_latest_checkpoint

    path = runner._load_from or (find_latest_checkpoint(runner.work_dir) if runner._resume else None)
    if path:
        candidate = osp.join(osp.dirname(path), sharded['dir'])
        if osp.isdir(candidate):
            return candidate
    return sharded['path']


def merge_sharded_checkpoint(path: str, out: str, with_optimizer: bool = True) -> dict:
    """Write the sharded checkpoint ``path`` (``iter_N.pth`` + ``iter_N.pth.dcp/``) as one ordinary checkpoint.

    Runs in one process, without a process group. The result has the full ``state_dict`` (the usual mmpretrain
    keys), and, with ``with_optimizer``, the optimizer state numbered as ``torch.optim`` saves it, so that it
    resumes under DDP like any checkpoint.

    Returns:
        The checkpoint written.
    """
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    from mimlab.utils import load_checkpoint_weights_only

    meta = load_checkpoint_weights_only(path)
    sharded = meta.get('sharded_state')
    if sharded is None:
        raise ValueError(f'{path} is not a sharded checkpoint (no sharded_state entry): it is already one file')
    shard_dir = osp.join(osp.dirname(path), sharded['dir'])
    if not osp.isdir(shard_dir):
        shard_dir = sharded['path']
    if not osp.isdir(shard_dir):
        raise FileNotFoundError(f'{path}: its shards are missing (no folder {shard_dir})')
    with tempfile.TemporaryDirectory(dir=osp.dirname(osp.abspath(out))) as tmp:
        full_path = osp.join(tmp, 'full.pth')
        dcp_to_torch_save(shard_dir, full_path)
        full = torch.load(full_path, map_location='cpu', weights_only=True)
    merged = {k: v for k, v in meta.items() if k != 'sharded_state'}
    merged['state_dict'] = full['state_dict']
    if 'ema_state_dict' in full:  # as EMAHook saves it: state_dict the average, ema_state_dict the live weights
        merged['ema_state_dict'] = full['ema_state_dict']
    if with_optimizer and 'optimizer' in full:
        by_name = full['optimizer']
        index = {}
        for group in by_name['param_groups']:
            for name in group['params']:
                index.setdefault(name, len(index))
        merged['optimizer'] = dict(
            state={index[n]: s for n, s in by_name['state'].items()},
            param_groups=[dict(g, params=[index[n] for n in g['params']]) for g in by_name['param_groups']],
        )
    torch.save(merged, out)
    return merged
