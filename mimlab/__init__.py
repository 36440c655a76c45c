"""mimlab: masked-image-modeling pretraining and evaluation in the OpenMMLab style."""

from .version import __version__

__all__ = ['__version__']

_APIS = ('get_model', 'inference_model', 'list_models')


def __getattr__(name):
    # mimlab.get_model & co. without importing torch and mmengine on `import mimlab`
    if name in _APIS:
        from . import apis

        return getattr(apis, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
