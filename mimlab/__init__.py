"""mimlab: masked-image-modeling pretraining and evaluation in the OpenMMLab style."""

from .version import __version__

__all__ = ['__version__']
