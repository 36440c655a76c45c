"""Weights-only checkpoint loading for torch >= 2.6.

mmengine 0.10.7 calls ``torch.load(filename, map_location=...)`` without ``weights_only``; since torch 2.6 that means
``weights_only=True``, and a full mmengine checkpoint fails to unpickle because its ``message_hub`` holds
``HistoryBuffer`` objects with numpy arrays and scalars (mmengine issue #1655). Instead of falling back to
``weights_only=False`` (which runs arbitrary pickled code), mimlab allow-lists exactly the non-tensor types that a
checkpoint written by mmengine's runner contains. Everything else is still refused by torch's weights-only unpickler.
"""

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def _numpy_types() -> list:
    core = np._core if hasattr(np, '_core') else np.core  # numpy 2 moved numpy.core to numpy._core
    types = [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype]
    # numpy >= 1.25 pickles a dtype through its class (numpy.dtypes.Float64DType, ...)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in ('Float64DType', 'Float32DType', 'Int64DType', 'Int32DType', 'BoolDType', 'UInt8DType'):
            if hasattr(dtypes, name):
                types.append(getattr(dtypes, name))
    return types


def checkpoint_safe_globals() -> list:
    """The non-tensor globals a checkpoint written by mimlab (mmengine's runner) may contain."""
    return [HistoryBuffer, *_numpy_types()]


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
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise RuntimeError(f'cannot load checkpoint {path!r} weights-only: {e}') from e


allow_mmengine_checkpoint_types()
