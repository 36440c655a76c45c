"""Weight EMA under FSDP2 sharding: mmengine's ``EMAHook`` with the average kept as shards.

mmengine's ``EMAHook`` deep-copies the model, which ``fully_shard`` refuses. :class:`ShardedEMAHook` builds the
averaged model (the hook's ``ema_type``: mmengine's ``ExponentialMovingAverage``, mimlab's
``WarmupExponentialMovingAverage``, ...) from a plain *local view* of the sharded model instead: a module with the
same parameter and buffer names whose tensors are this rank's local shards (a DTensor's ``to_local()``, sharing its
storage) and the replicated buffers. The average is then this rank's shard of the average: the update is elementwise,
so it equals the unsharded EMA exactly. Everything else is mmengine's hook, run on local views: the update, the swap
of the averaged weights in for validation / test and back (in place, into the live shards).

Checkpoints are as a DDP run's with ``EMAHook``: :class:`~mimlab.engine.parallel.ShardedCheckpointHook` writes the
average into the checkpoint's shards as DTensors, swapped as mmengine swaps them (``state_dict`` holds the averaged
weights, ``ema_state_dict`` the live ones with ``module.``-prefixed keys and the average's ``steps``), so a merged
checkpoint, ``tools/test.py`` and a resume (sharded, under DDP, on another number of ranks) see what they would see
with DDP.

:func:`mimlab.engine.build_runner` turns a config's ``EMAHook`` into this hook when the model wrapper is
``FullyShardWrapper``; on an unsharded model it is mmengine's hook.
"""

import itertools

import torch
from mmengine.hooks import EMAHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import MODELS
from torch import nn
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor, distribute_tensor

from mimlab.registry import HOOKS

from .fsdp import is_sharded

__all__ = ['ShardedEMAHook', 'local_tensors', 'local_view', 'reshard_units']


def reshard_units(model: nn.Module) -> None:
    """Reshard every FSDP unit of ``model`` (FSDP2 keeps the root's weights gathered after a forward without
    backward, e.g. after validation), so that its registered parameters are the sharded DTensors."""
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def local_tensors(model: nn.Module) -> list[torch.Tensor]:
    """``model``'s parameters (a DTensor's local shard) then its buffers, in ``named_parameters`` /
    ``named_buffers`` order; call :func:`reshard_units` first."""
    with torch.no_grad():
        params = [p.to_local() if isinstance(p, DTensor) else p for p in model.parameters()]
    return [*params, *model.buffers()]


def local_view(model: nn.Module) -> nn.Module:
    """A plain module with ``model``'s parameter and buffer names (and order) holding this rank's local tensors.

    The tensors share storage with ``model``'s (a DTensor's local shard, a buffer itself): writing into the view
    writes into the model. ``model``'s FSDP units are resharded first (:func:`reshard_units`).
    """
    reshard_units(model)
    persistent = set(model.state_dict(keep_vars=True))
    view = nn.Module()
    with torch.no_grad():
        params = ((name, tensor, True) for name, tensor in model.named_parameters())
        buffers = ((name, tensor, False) for name, tensor in model.named_buffers())
        for name, tensor, is_param in itertools.chain(params, buffers):
            *path, leaf = name.split('.')
            owner = view
            for part in path:
                if part not in owner._modules:
                    owner.add_module(part, nn.Module())
                owner = owner._modules[part]
            local = (tensor.to_local() if isinstance(tensor, DTensor) else tensor).detach()
            if is_param:
                owner.register_parameter(leaf, nn.Parameter(local, requires_grad=False))
            else:
                owner.register_buffer(leaf, local, persistent=name in persistent)
    return view


def _storage_key(tensors: list[torch.Tensor]) -> tuple:
    return tuple((t.data_ptr(), t.shape, t.stride(), t.dtype) for t in tensors)


@HOOKS.register_module()
class ShardedEMAHook(EMAHook):
    """mmengine's ``EMAHook`` (same arguments) for a model sharded by ``FullyShardWrapper`` (see the module
    docstring); mmengine's hook as it is for any other model."""

    _sharded = None  # the sharded algorithm, when there is one
    _view = None  # the local view of _sharded last handed out, and the storage it points into
    _view_key = None
    _full_ema = None  # an ordinary checkpoint's ema_state_dict, cut into shards once the model is loaded

    def before_run(self, runner) -> None:
        if not is_sharded(runner.model):
            super().before_run(runner)
            return
        self._sharded = runner.model.module if is_model_wrapper(runner.model) else runner.model
        # built from the local view: BaseAveragedModel's deep copy is then this rank's shards, plain tensors
        self.ema_model = MODELS.build(self.ema_cfg, default_args=dict(model=local_view(self._sharded)))

    @property
    def src_model(self) -> nn.Module:
        """The model mmengine's methods average and swap: when sharded, a local view of the resharded model (FSDP2
        swaps its registered parameters to gathered ones for a forward), else the model itself.

        The view is built once and handed out again while the local shards and buffers are the same tensors
        (same storage, shape, stride and dtype); once any of them is another tensor (e.g. a replaced buffer), a new
        view is built. For ViT-L (394 tensors) building it took 9 ms on a
        2-core CPU VM, handing out the cached one 1.7 ms (``docs/benchmarks.md``, "Weight EMA under FSDP2").
        """
        if self._sharded is None:
            return self._src_model
        reshard_units(self._sharded)
        key = _storage_key(local_tensors(self._sharded))
        if key != self._view_key:
            self._view, self._view_key = local_view(self._sharded), key
        return self._view

    @src_model.setter
    def src_model(self, model: nn.Module) -> None:
        self._src_model = model

    def ema_state_dict(self) -> dict:
        """The averaged model's ``state_dict`` (``module.``-prefixed keys and ``steps``) for a DCP checkpoint: the
        averaged parameters as DTensors sharded as the live ones (a collective-free wrap of the local shards)."""
        state = self.ema_model.state_dict()
        if self._sharded is None:
            return state
        live = dict(self._sharded.named_parameters())
        for key, value in state.items():
            param = live.get(key[len('module.') :]) if key.startswith('module.') else None
            if isinstance(param, DTensor):
                state[key] = DTensor.from_local(
                    value, param.device_mesh, param.placements, run_check=False, shape=param.shape,
                    stride=param.stride(),
                )  # fmt: skip
        return state

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._sharded is None:
            super().before_save_checkpoint(runner, checkpoint)
        # sharded: ShardedCheckpointHook writes the average (swapped) into the checkpoint's shards

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._sharded is None:
            super().after_load_checkpoint(runner, checkpoint)
            return
        # the weights and the average are loaded by ShardedCheckpointHook (load_ema), once the model is
        if runner._resume and 'ema_state_dict' in checkpoint and 'sharded_state' not in checkpoint:
            self._swap_ema_state_dict(checkpoint)  # an ordinary checkpoint: its state_dict back to the live weights
            self._full_ema = checkpoint['ema_state_dict']

    def load_ema(self, runner, loaded: bool) -> None:
        """After ShardedCheckpointHook has loaded the model: ``loaded`` says whether it also loaded the average (a
        sharded checkpoint that has one); else the average is an ordinary checkpoint's, cut into this rank's shards,
        or (no average in the checkpoint, or not resuming) a copy of the loaded weights, as mmengine's hook makes."""
        if self._sharded is None or loaded:
            return
        ema = self.ema_model.state_dict()
        if self._full_ema is not None:
            live = dict(self._sharded.named_parameters())
            with torch.no_grad():
                for key, value in self._full_ema.items():
                    param = live.get(key[len('module.') :]) if key.startswith('module.') else None
                    if isinstance(param, DTensor):
                        value = distribute_tensor(value, param.device_mesh, param.placements, src_data_rank=None)
                        value = value.to_local()
                    ema[key].copy_(value)
            self._full_ema = None
            return
        if runner._resume:
            print_log('There is no `ema_state_dict` in checkpoint: the average starts from the loaded weights')
        self.ema_model.module.load_state_dict(self.src_model.state_dict())
