"""The ground floor: checkpoint I/O, atomic writes, process-group setup, RNG states, environment report.

Nothing here imports any other part of mimlab (``tests/test_layering.py`` checks it).
"""

from .atomic_io import atomic_write, interrupted_writes
from .checkpoint import allow_mmengine_checkpoint_types, load_checkpoint, load_checkpoint_weights_only
from .collect_env import collect_env
from .dist import finish_dist, init_dist
from .rng import get_rng_state, set_rng_state

__all__ = [
    'atomic_write',
    'interrupted_writes',
    'collect_env',
    'allow_mmengine_checkpoint_types',
    'load_checkpoint',
    'load_checkpoint_weights_only',
    'finish_dist',
    'init_dist',
    'get_rng_state',
    'set_rng_state',
]
