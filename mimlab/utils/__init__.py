from .atomic_io import atomic_write
from .checkpoint import allow_mmengine_checkpoint_types, load_checkpoint, load_checkpoint_weights_only
from .collect_env import collect_env
from .dist import finish_dist, init_dist
from .setup_env import register_all_modules

__all__ = [
    'atomic_write',
    'collect_env',
    'register_all_modules',
    'allow_mmengine_checkpoint_types',
    'load_checkpoint',
    'load_checkpoint_weights_only',
    'finish_dist',
    'init_dist',
]
