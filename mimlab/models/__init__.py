from .algorithms import *  # noqa: F401,F403
from .backbones import *  # noqa: F401,F403
from .data_preprocessor import MIMDataPreprocessor
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403

__all__ = ['MIMDataPreprocessor']
from .gpu_data_preprocessor import GPUDecodeDataPreprocessor  # noqa: E402

__all__ += ['GPUDecodeDataPreprocessor']
