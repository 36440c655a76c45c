from .lamb import Lamb
from .lars import LARS
from .layer_decay import LayerDecayOptimWrapperConstructor

__all__ = ['LARS', 'Lamb', 'LayerDecayOptimWrapperConstructor']
