"""Weights-only checkpoint loading for torch >= 2.6.

mmengine 0.10.7 calls ``torch.load(filename, map_location=...)`` without ``weights_only``; since torch 2.6 that means
``weights_only=True``, and a full mmengine checkpoint fails to unpickle because its ``message_hub`` holds
``HistoryBuffer`` objects with numpy arrays and scalars (mmengine issue #1655). Instead of falling back to
``weights_only=False`` (which runs arbitrary pickled code), mimlab allow-lists exactly the non-tensor types that a
checkpoint written by mimlab's runner contains, and makes ``HistoryBuffer`` stop pickling function references.
Everything else is still refused by torch's weights-only unpickler.
"""

import logging
import os
import zipfile

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

_DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_getstate(self) -> dict:
    """``HistoryBuffer.__getstate__`` without the built-in statistics methods.

    mmengine pickles ``{'min': HistoryBuffer.min, ...}`` into every buffer's state so that custom statistics survive
    a resume; those functions pickle as ``builtins.getattr(HistoryBuffer, 'min')``, which the weights-only unpickler
    rightly refuses. The four built-in methods are re-registered by ``__setstate__`` anyway, so only custom ones are
    kept (and mmengine's version also mutated the live object's ``__dict__``; this one does not).
    """
    state = dict(self.__dict__)
    custom = {k: v for k, v in self._statistics_methods.items() if k not in _DEFAULT_STATISTICS}
    if custom:
        state['statistics_methods'] = custom
    return state


HistoryBuffer.__getstate__ = _history_buffer_getstate


def checkpoint_safe_globals() -> list:
    """Exactly the non-tensor globals in a checkpoint written by mimlab's runner (checked by a test)."""
    core = np._core if hasattr(np, '_core') else np.core  # numpy 2 moved numpy.core to numpy._core
    # HistoryBuffer keeps float64 values and int64 counts; numpy >= 1.25 rebuilds a dtype through its class
    dtype_classes = [type(np.dtype(np.float64)), type(np.dtype(np.int64))]
    return [HistoryBuffer, core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype, *dtype_classes]


def allow_mmengine_checkpoint_types() -> None:
    """Allow-list the types of :func:`checkpoint_safe_globals` for every weights-only ``torch.load``.

    Called on import of :mod:`mimlab.utils`, so mmengine's own loaders (resume, ``load_from``) work unchanged.
    """
    torch.serialization.add_safe_globals(checkpoint_safe_globals())


def load_checkpoint_weights_only(path: str, map_location='cpu') -> dict:
    """Load ``path`` with the weights-only unpickler and mimlab's allow-list.

    Raises:
        RuntimeError: naming the file when it is not a readable weights-only checkpoint.
    """
    check_checkpoint_file(path)
    try:
        # not `with torch.serialization.safe_globals(...)`: on exit it removes the types from the process-wide
        # allow-list as well, after which mmengine's own resume in the same process fails
        allow_mmengine_checkpoint_types()
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise RuntimeError(
            f'cannot load checkpoint {path!r} weights-only: {e}\n(if the file is yours or from a source you trust, '
            'the converter tools load it with --trusted, the API with trusted=True)'
        ) from e


class NotACheckpointError(RuntimeError):
    """A file given as a checkpoint that cannot be one (corrupt or truncated)."""


def check_checkpoint_file(path: str) -> None:
    """Refuse a local file that cannot be a checkpoint, before torch's loader answers with unpickling advice.

    ``torch.save`` writes a zip archive (``<name>/data.pkl`` inside); files from torch < 1.6 are a bare pickle
    (first byte 0x80). Anything else, or a zip archive whose end is missing, is not a checkpoint. Paths with a
    scheme (``https://...``) are left to the loader.

    Raises:
        FileNotFoundError: no such file.
        NotACheckpointError: ``"<path> is not a checkpoint (corrupt or truncated): ..."`` (a ``RuntimeError``, as
            every other unreadable-checkpoint error of :func:`load_checkpoint_weights_only`).
    """
    if '://' in str(path):
        return
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    with open(path, 'rb') as f:
        head = f.read(4)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise NotACheckpointError(f'{path} is not a checkpoint (corrupt or truncated): {e}') from e
        if not any(n.endswith('data.pkl') for n in names):
            raise NotACheckpointError(
                f'{path} is not a checkpoint (corrupt or truncated): a zip archive without data.pkl'
            )
        return
    size = os.path.getsize(path)
    if head.startswith(b'PK'):
        raise NotACheckpointError(
            f'{path} is not a checkpoint (corrupt or truncated): it starts like the zip archive torch.save writes, '
            f'but its end is missing ({size} bytes; an interrupted download or copy?)'
        )
    if not head.startswith(b'\x80'):
        raise NotACheckpointError(
            f'{path} is not a checkpoint (corrupt or truncated): {size} bytes that are neither the zip archive of '
            f'torch.save nor a pickle (first bytes {head!r})'
        )


def load_checkpoint(path: str, map_location='cpu', trusted: bool = False) -> dict:
    """Load ``path`` weights-only, or, with the explicit opt-in ``trusted=True``, with the full unpickler.

    Foreign training checkpoints often pickle more than tensors (the official MAE fine-tuning files store their
    ``argparse.Namespace``), which the weights-only loader refuses. ``trusted=True`` loads them anyway, which runs
    whatever code the file's pickle names: use it only for files whose origin you trust. The converter tools expose it
    as ``--trusted``.
    """
    if not trusted:
        return load_checkpoint_weights_only(path, map_location)
    from mmengine.logging import print_log

    check_checkpoint_file(path)
    print_log(f'loading {path} with the full unpickler (trusted=True): it can run code', 'current', logging.WARNING)
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise RuntimeError(f'cannot load checkpoint {path!r}: {e}') from e


def add_trusted_argument(parser) -> None:
    """The ``--trusted`` opt-in of the tools that read foreign checkpoints (see :func:`load_checkpoint`)."""
    parser.add_argument(
        '--trusted',
        action='store_true',
        help='load SRC with the full unpickler (runs code named in the file): only for files you trust, e.g. '
        "training checkpoints that pickle their argparse args; the default is torch's weights-only loader",
    )


allow_mmengine_checkpoint_types()


def state_dict_of(checkpoint, path: str = '<checkpoint>') -> dict:
    """The tensors of a loaded checkpoint: under ``state_dict`` (mmengine), ``model`` (timm / official MAE) or at the
    top level.

    Raises:
        TypeError: naming ``path`` when the object holds no mapping of tensors.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{path} is not a checkpoint: it holds a {type(checkpoint).__name__}, not a dict of tensors')
    state = checkpoint.get('state_dict', checkpoint.get('model', checkpoint))
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise TypeError(f'{path} is not a checkpoint: found no tensors (keys: {sorted(checkpoint)[:10]})')
    return state


def load_model_weights(model: torch.nn.Module, path: str, prefix: str = '', strict: bool = True) -> None:
    """Load ``path`` (weights-only) into ``model``; with ``prefix`` only keys starting with it, prefix removed.

    Raises:
        RuntimeError: naming the file and listing missing keys, unexpected keys and shape mismatches.
    """
    state = state_dict_of(load_checkpoint_weights_only(path), path)
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise RuntimeError(f'{path} has no keys starting with {prefix!r}')
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        raise RuntimeError(f'{path} does not fit {type(model).__name__}: {e}') from e
