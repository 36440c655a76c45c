"""FSDP2 sharding as an mmengine model wrapper: ``model_wrapper_cfg=dict(type='FullyShardWrapper')``.

Weights, gradients and optimizer state are split across the ranks (each holds ``1/world_size`` of every
parameter as a ``DTensor`` shard), so a model whose fp32 weights + gradients + AdamW state do not fit on one GPU
trains on several. torch's FSDP2 (``torch.distributed.fsdp.fully_shard``) is applied to every block (ViT / Swin /
MixMIM / ConvNeXt blocks and the MAE / MixMIM decoder blocks, found by class name), then to the whole algorithm, so
a block's full weights exist only while it runs (forward, and again in the backward pass).

What the runner sees is what mmengine's ``MMDistributedDataParallel`` gives: ``train_step`` / ``val_step`` /
``test_step`` with the same semantics, and ``.module`` the algorithm (its parameters are now DTensors). The
optimizer is built afterwards from those parameters, so mimlab's optimizer constructor (layer-decay groups,
weight-decay exemptions, fused AdamW), gradient accumulation, ``clip_grad`` (``clip_grad_norm_`` on DTensor
gradients computes the norm over all shards) and the non-finite guard work unchanged.

Differences from DDP, on purpose:

- The weights are initialised (``init_weights``) and broadcast from rank 0 *before* sharding, as DDP broadcasts
  rank 0's weights; :class:`~mimlab.engine.parallel.ShardedCheckpointHook` then skips the runner's own
  re-initialisation, which would broadcast DTensors (c10d cannot).
- With gradient accumulation every micro-batch's gradients are reduce-scattered (there is no ``no_sync``): keeping
  unsharded gradients until the last micro-batch would need the memory that sharding saves.
- Checkpoints are sharded (each rank writes its part, :mod:`mimlab.engine.parallel.checkpoint`).
"""

from contextlib import contextmanager

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper
from torch import nn
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from mimlab.registry import MODEL_WRAPPERS

from .activation_checkpointing import DEFAULT_BLOCKS, apply_activation_checkpointing, find_blocks

__all__ = ['CheckpointedDDP', 'FullyShardWrapper', 'gathered_root', 'is_sharded', 'local_state_bytes']

_DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}


def _dtype(value, key: str) -> torch.dtype | None:
    if value is None or isinstance(value, torch.dtype):
        return value
    if value not in _DTYPES:
        raise ValueError(f'model_wrapper_cfg.mixed_precision.{key}={value!r}: use one of {sorted(_DTYPES)} or None')
    return _DTYPES[value]


@MODEL_WRAPPERS.register_module()
class FullyShardWrapper(nn.Module):
    """Shard ``module`` with FSDP2, one unit per block plus the root (see the module docstring).

    Args:
        module: The algorithm (an mmengine ``BaseModel``), on its device.
        block_types: Class names of the blocks that become their own FSDP units (and, with
            ``activation_checkpointing``, are checkpointed).
        mixed_precision: ``dict(param_dtype=..., reduce_dtype=..., output_dtype=...)`` for FSDP2's
            ``MixedPrecisionPolicy``, dtypes as strings (``'bfloat16'``, ``'float32'``). E.g.
            ``dict(param_dtype='bfloat16', reduce_dtype='float32')``: bf16 compute and all-gathers, fp32
            gradient reduction, fp32 master weights and optimizer state. None: everything in the parameters' dtype.
            Use it with a plain ``OptimWrapper`` (no autocast, no loss scaling).
        reshard_after_forward: Free each block's gathered weights after its forward (gathered again for the
            backward pass: less memory, more communication). False keeps them from forward to backward.
        activation_checkpointing: Recompute every block in the backward pass
            (:func:`~mimlab.engine.parallel.apply_activation_checkpointing`).
        init_weights: Call the model's ``init_weights()`` before sharding, as the runner does before training.
            ``tools/test.py`` sets it to False: the checkpoint replaces the weights, and a fine-tune recipe's
            ``Pretrained`` init would look for its pretraining checkpoint.
    """

    def __init__(
        self,
        module: nn.Module,
        block_types: tuple[str, ...] | list[str] = DEFAULT_BLOCKS,
        mixed_precision: dict | None = None,
        reshard_after_forward: bool = True,
        activation_checkpointing: bool = False,
        init_weights: bool = True,
    ):
        super().__init__()
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError('FullyShardWrapper needs an initialised process group (start with a launcher)')
        mp = dict(mixed_precision or {})
        unknown = sorted(set(mp) - {'param_dtype', 'reduce_dtype', 'output_dtype'})
        if unknown:
            raise ValueError(f'model_wrapper_cfg.mixed_precision: unknown keys {unknown}')
        policy = MixedPrecisionPolicy(**{k: _dtype(v, k) for k, v in mp.items()})

        # like DDP: every rank starts from rank 0's weights (initialised here, while they are still whole tensors)
        if init_weights and hasattr(module, 'init_weights'):
            module.init_weights()
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor, src=0)

        if activation_checkpointing:
            apply_activation_checkpointing(module, block_types)
        self.block_names = [name for name, _ in find_blocks(module, block_types)]
        for name in self.block_names:
            fully_shard(module.get_submodule(name), mp_policy=policy, reshard_after_forward=reshard_after_forward)
        fully_shard(module, mp_policy=policy, reshard_after_forward=reshard_after_forward)
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def train_step(self, data, optim_wrapper: OptimWrapper) -> dict[str, torch.Tensor]:
        """One update, as ``MMDistributedDataParallel.train_step``: preprocess, forward through the sharded root (its
        hooks gather the weights), parse the losses, and let the optim wrapper run backward / clip / step."""
        with optim_wrapper.optim_context(self):
            data = self.module.data_preprocessor(data, training=True)
            losses = self._run_forward(data, mode='loss')
        parsed_loss, log_vars = self.module.parse_losses(losses)
        optim_wrapper.update_params(parsed_loss)
        return log_vars

    def val_step(self, data) -> list:
        """The module's ``val_step``; it calls the sharded root, so the weights are gathered."""
        return self.module.val_step(data)

    def test_step(self, data) -> list:
        """The module's ``test_step``."""
        return self.module.test_step(data)

    def _run_forward(self, data, mode: str):
        if isinstance(data, dict):
            return self.module(**data, mode=mode)
        if isinstance(data, list | tuple):
            return self.module(*data, mode=mode)
        raise TypeError(f'Output of `data_preprocessor` should be list, tuple or dict, but got {type(data)}')


@contextmanager
def gathered_root(model: nn.Module):
    """Gather the sharded root's own weights (those outside the blocks) for calls that bypass ``forward``, such as
    ``model.reconstruct(...)``; blocks gather theirs when called. A collective: enter it on every rank. A no-op for
    a model that is not sharded."""
    module = getattr(model, 'module', model)
    if not is_sharded(module):
        yield
        return
    module.unshard()
    try:
        yield
    finally:
        module.reshard()


@MODEL_WRAPPERS.register_module()
class CheckpointedDDP(MMDistributedDataParallel):
    """mmengine's ``MMDistributedDataParallel`` with activation checkpointing of every block, applied before DDP
    wraps the model: ``model_wrapper_cfg=dict(type='CheckpointedDDP')`` (DDP's own arguments pass through).

    Args:
        module: The algorithm.
        block_types: Class names of the blocks to checkpoint
            (:func:`~mimlab.engine.parallel.apply_activation_checkpointing`).
        **kwargs: ``DistributedDataParallel``'s arguments (``device_ids``, ``broadcast_buffers``, ...).
    """

    def __init__(self, module: nn.Module, block_types: tuple[str, ...] | list[str] = DEFAULT_BLOCKS, **kwargs):
        apply_activation_checkpointing(module, block_types)
        super().__init__(module=module, **kwargs)


def is_sharded(model: nn.Module) -> bool:
    """Whether ``model`` (or the module a wrapper holds) has been sharded with ``fully_shard``."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(getattr(model, 'module', model), FSDPModule)


def local_state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """Bytes of parameters, gradients and optimizer state that *this rank* holds, counted from the tensors' local
    storage (a DTensor's local shard; a plain tensor in full).

    Returns:
        ``dict(params=..., grads=..., optimizer=..., total=...)``.
    """
    from torch.distributed.tensor import DTensor

    def nbytes(t: torch.Tensor) -> int:
        t = t.to_local() if isinstance(t, DTensor) else t
        return t.numel() * t.element_size()

    params = list(model.parameters())
    out = dict(
        params=sum(nbytes(p) for p in params),
        grads=sum(nbytes(p.grad) for p in params if p.grad is not None),
        optimizer=0,
    )
    if optimizer is not None:
        out['optimizer'] = sum(
            nbytes(v) for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)
        )
    out['total'] = out['params'] + out['grads'] + out['optimizer']
    return out
