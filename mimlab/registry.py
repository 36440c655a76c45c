"""mimlab's registries.

Every registry is a child of the matching mmengine root registry, so mmengine's and mmcv's components (runners,
hooks, ``LoadImageFromFile``, optimizers from ``torch.optim``, ...) resolve from mimlab configs too, while mimlab's own
names shadow a parent's name of the same spelling. Configs use ``default_scope='mimlab'``.
"""

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

__all__ = [
    'RUNNERS',
    'RUNNER_CONSTRUCTORS',
    'LOOPS',
    'HOOKS',
    'LOG_PROCESSORS',
    'OPTIMIZERS',
    'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS',
    'DATASETS',
    'DATA_SAMPLERS',
    'TRANSFORMS',
    'FUNCTIONS',
    'MODELS',
    'MODEL_WRAPPERS',
    'WEIGHT_INITIALIZERS',
    'TASK_UTILS',
    'METRICS',
    'EVALUATORS',
    'VISUALIZERS',
    'VISBACKENDS',
]


def _child(name, parent, location):
    return Registry(name, parent=parent, scope='mimlab', locations=[location])


RUNNERS = _child('runner', MMENGINE_RUNNERS, 'mimlab.engine')
RUNNER_CONSTRUCTORS = _child('runner constructor', MMENGINE_RUNNER_CONSTRUCTORS, 'mimlab.engine')
LOOPS = _child('loop', MMENGINE_LOOPS, 'mimlab.engine')
HOOKS = _child('hook', MMENGINE_HOOKS, 'mimlab.engine')
LOG_PROCESSORS = _child('log processor', MMENGINE_LOG_PROCESSORS, 'mimlab.engine')
OPTIMIZERS = _child('optimizer', MMENGINE_OPTIMIZERS, 'mimlab.engine')
OPTIM_WRAPPERS = _child('optim wrapper', MMENGINE_OPTIM_WRAPPERS, 'mimlab.engine')
OPTIM_WRAPPER_CONSTRUCTORS = _child(
    'optimizer wrapper constructor', MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, 'mimlab.engine'
)
PARAM_SCHEDULERS = _child('parameter scheduler', MMENGINE_PARAM_SCHEDULERS, 'mimlab.engine')

DATASETS = _child('dataset', MMENGINE_DATASETS, 'mimlab.datasets')
DATA_SAMPLERS = _child('data sampler', MMENGINE_DATA_SAMPLERS, 'mimlab.datasets')
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS, 'mimlab.datasets')
# mmengine's Runner looks collate functions up in the root registry: configs name mimlab's as 'mimlab.default_collate'
FUNCTIONS = _child('function', MMENGINE_FUNCTIONS, 'mimlab.datasets')

MODELS = _child('model', MMENGINE_MODELS, 'mimlab.models')
MODEL_WRAPPERS = _child('model_wrapper', MMENGINE_MODEL_WRAPPERS, 'mimlab.models')
WEIGHT_INITIALIZERS = _child('weight initializer', MMENGINE_WEIGHT_INITIALIZERS, 'mimlab.models')
TASK_UTILS = _child('task util', MMENGINE_TASK_UTILS, 'mimlab.models')

METRICS = _child('metric', MMENGINE_METRICS, 'mimlab.evaluation')
EVALUATORS = _child('evaluator', MMENGINE_EVALUATOR, 'mimlab.evaluation')

VISUALIZERS = _child('visualizer', MMENGINE_VISUALIZERS, 'mimlab.visualization')
VISBACKENDS = _child('vis_backend', MMENGINE_VISBACKENDS, 'mimlab.visualization')
