"""Activation checkpointing applied to a model from outside its files, composable with DDP and FSDP2.

A block that is checkpointed keeps only its inputs for the backward pass and runs its forward again there
(less activation memory for about one more forward pass of compute). torch's composable
``torch.distributed._composable.checkpoint`` does this with forward hooks
(:func:`mimlab.models.layers.checkpoint_module`, which the backbones' ``with_cp=True`` use as well): the module
keeps its class and its parameter names (state-dict keys, layer-decay depths and weight-decay names are
unchanged), it can be applied before ``fully_shard`` (FSDP2 composes with it: the recomputation runs inside the
block's own unshard/reshard) and inside a model that DDP wraps. Dropout and stochastic depth draw the same numbers
in the recomputation (the RNG state is saved with the inputs), so losses and gradients equal those without it.

The blocks are found by class name (:data:`DEFAULT_BLOCKS`: the transformer blocks of ViT, the MAE and MixMIM
decoders, Swin and MixMIM, and the ConvNeXt and ResNet blocks), so model files name no infrastructure.
"""

from collections.abc import Iterable

from torch import nn

from mimlab.models.layers import checkpoint_module, is_checkpointed

__all__ = ['DEFAULT_BLOCKS', 'find_blocks', 'apply_activation_checkpointing']

# the repeated unit of every backbone family and decoder: one per transformer layer / residual block
DEFAULT_BLOCKS = ('TransformerEncoderLayer', 'SwinBlock', 'MixMIMBlock', 'ConvNeXtBlock', 'Bottleneck', 'BasicBlock')


def find_blocks(model: nn.Module, block_types: Iterable[str] = DEFAULT_BLOCKS) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every module of ``model`` whose class (or a base class) is named in ``block_types``,
    outermost first; a matching module inside another match is left out (blocks do not nest).

    Raises:
        ValueError: No module matches (the message names the model's class and the names looked for).
    """
    wanted = set(block_types)
    found, inside = [], ()
    for name, module in model.named_modules():
        if inside and name.startswith(inside):
            continue
        if any(cls.__name__ in wanted for cls in type(module).__mro__):
            found.append((name, module))
            inside = tuple(n + '.' for n, _ in found)
    if not found:
        raise ValueError(
            f'no module of {type(model).__name__} is one of the block types {sorted(wanted)}; name the class of the '
            'repeated block in block_types'
        )
    return found


def apply_activation_checkpointing(model: nn.Module, block_types: Iterable[str] = DEFAULT_BLOCKS) -> list[str]:
    """Checkpoint every block of ``model`` in place (see the module docstring); returns the blocks' names.

    Call it before wrapping the model in DDP or sharding it with ``fully_shard``; a module already checkpointed
    (e.g. by ``with_cp=True`` in its backbone config) is not checkpointed twice.
    """
    names = []
    for name, block in find_blocks(model, block_types):
        if not is_checkpointed(block):  # with_cp=True in the backbone config checkpoints its blocks already
            checkpoint_module(block)
            names.append(name)
    return names
