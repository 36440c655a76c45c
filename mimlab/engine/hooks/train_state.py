"""What an mmengine checkpoint leaves out for an exact resume, and the wrapper prefixes it lets through.

1. **Random number generators.** mmengine re-seeds on resume, so the masks, augmentations and drop-path draws after a
   resume differ from the uninterrupted run's. This hook stores every rank's torch (CPU and CUDA), numpy and Python
   RNG states (:mod:`mimlab.utils.rng`) in the checkpoint (``checkpoint['rng_state']``, one entry per rank, tensors
   and ints only so that the weights-only loader accepts them) and hands them to mimlab's train loops, which restore
   them at the point where the uninterrupted run would continue.
2. **Wrapper prefixes.** A model wrapped by ``torch.compile`` (``OptimizedModule``) saves its keys as
   ``_orig_mod.*``; one wrapped by a DDP that mmengine does not recognise saves ``module.*``. Such a checkpoint does
   not load into the plain model (VideoMAEv2 issue #33). Keys are saved without those prefixes, and prefixed keys in
   an older checkpoint are fitted to the model they are loaded into.

mimlab's train loops (:mod:`mimlab.engine.loops`) register this hook themselves, and
:func:`~mimlab.engine.build_runner` does for any loop; configs need not name it.
"""

import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mimlab.registry import HOOKS
from mimlab.utils.rng import get_rng_state

__all__ = ['TrainStateHook', 'strip_wrapper_prefixes']

_WRAPPERS = ('_orig_mod', 'module')


def _strip(name: str) -> str:
    """``name`` without leading ``_orig_mod`` / ``module`` components (a key, or a module path in ``_metadata``)."""
    parts = name.split('.')
    while parts and parts[0] in _WRAPPERS:
        parts.pop(0)
    return '.'.join(parts)


def strip_wrapper_prefixes(state_dict: dict) -> dict:
    """``state_dict`` with every leading ``_orig_mod.`` / ``module.`` removed from its keys (order kept)."""
    out = type(state_dict)((_strip(k), v) for k, v in state_dict.items())
    if hasattr(state_dict, '_metadata'):  # per-module versions that load_state_dict reads
        out._metadata = type(state_dict._metadata)((_strip(k), v) for k, v in state_dict._metadata.items())
    return out


@HOOKS.register_module()
class TrainStateHook(Hook):
    """Save the RNG states of all ranks with each checkpoint and keep wrapper prefixes out of the saved keys.

    mmengine writes checkpoints on rank 0 only (``Runner.save_checkpoint`` is ``master_only``), so the other ranks'
    states must be gathered before, on all ranks: mimlab's :class:`~mimlab.engine.hooks.AtomicCheckpointHook` calls
    :meth:`collect` just before it saves. A checkpoint written another way in a multi-rank job holds no RNG states,
    and resuming from it re-seeds as mmengine does.

    A loaded checkpoint's states wait in ``rng_states`` until mimlab's train loops take them (:meth:`pop_rng_state`)
    when they resume.
    """

    priority = 'VERY_LOW'

    def __init__(self):
        self.rng_states = None
        self._collected = None

    def collect(self) -> None:
        """Gather every rank's RNG states for the next checkpoint; a collective, to be called on all ranks."""
        self._collected = all_gather_object(get_rng_state()) if get_world_size() > 1 else [get_rng_state()]

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['state_dict'] = strip_wrapper_prefixes(checkpoint['state_dict'])
        states, self._collected = self._collected, None
        if states is None and get_world_size() == 1:
            states = [get_rng_state()]
        if states is not None:
            checkpoint['rng_state'] = states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = strip_wrapper_prefixes(checkpoint['state_dict'])
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if isinstance(model, torch._dynamo.eval_frame.OptimizedModule):
            state = type(state)((f'_orig_mod.{k}', v) for k, v in state.items())
        checkpoint['state_dict'] = state
        self.rng_states = checkpoint.get('rng_state')

    def pop_rng_state(self, runner):
        """This rank's saved RNG states, once; None if there are none or they were saved by a different number of
        ranks (with a warning). Only a resume uses them: a checkpoint loaded with ``load_from`` starts a new run."""
        states, self.rng_states = self.rng_states, None
        if states is not None and len(states) != get_world_size():
            runner.logger.warning(
                f'the checkpoint holds the RNG states of {len(states)} ranks, this job has {get_world_size()}: '
                'random draws after the resume will not repeat the original run'
            )
            return None
        return states[get_rank()] if states is not None else None
