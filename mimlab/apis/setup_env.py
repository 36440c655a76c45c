"""What every command-line tool does first: register mimlab's modules and load its config.

:func:`register_all_modules` imports every package that registers components, so it sits above all of them; the
ground floor (:mod:`mimlab.utils`) never calls it.
"""

import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mimlab module that registers components, and make ``mimlab`` the default scope.

    Args:
        init_default_scope: Set the current default scope to ``'mimlab'``. If another scope is current, a new
            ``mimlab-<timestamp>`` scope is created so both stay usable.
    """
    from mimlab.engine.launch import import_components

    import_components()
    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created('mimlab'):
        DefaultScope.get_instance('mimlab', scope_name='mimlab')
        return
    if current.scope_name != 'mimlab':
        warnings.warn(
            f'The current default scope "{current.scope_name}" is not "mimlab"; '
            '`register_all_modules` creates a new default scope named "mimlab-<timestamp>".'
        )
        stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S-%f')
        DefaultScope.get_instance(f'mimlab-{stamp}', scope_name='mimlab')


def load_tool_config(path: str, cfg_options: dict | None = None, quiet: bool = True):
    """What a command-line tool does first: register mimlab's modules, load the config ``path`` and apply
    ``--cfg-options``.

    Args:
        path: Config file.
        cfg_options: ``{key: value}`` overrides (mmengine's ``DictAction``), applied last.
        quiet: Make the current mmengine logger a WARNING-level one, so that building a model does not print a
            line per initialised parameter.

    Returns:
        The merged ``mmengine.config.Config``.
    """
    import logging

    from mmengine.config import Config
    from mmengine.logging import MMLogger

    register_all_modules()
    if quiet:
        name = f'mimlab-tool-{datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")}'
        MMLogger.get_instance(name, log_level='WARNING')
        logging.getLogger(name).setLevel(logging.WARNING)
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg
