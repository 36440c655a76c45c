"""Atomic writes for mmengine's local file backend, so a killed job never leaves a truncated checkpoint.

mmengine writes checkpoints and the ``last_checkpoint`` pointer with ``LocalBackend.put``/``put_text``, which open
the destination and write into it: a job killed (preempted, out of memory) in the middle leaves a truncated file that
``--resume`` then trips over. mimlab replaces both methods (on import of :mod:`mimlab.utils`) with writes to a
temporary file in the same folder, ``fsync``, then ``os.replace`` — atomic on POSIX file systems: readers see the old
file or the new one, never a part.
"""

import os
import tempfile
from pathlib import Path

from mmengine.fileio.backends.local_backend import LocalBackend


def atomic_write(data: bytes, filepath: str | Path) -> None:
    """Write ``data`` to ``filepath`` atomically (temporary file in the same folder + ``os.replace``)."""
    filepath = os.fspath(filepath)
    folder = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{os.path.basename(filepath)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _put(self, obj: bytes, filepath) -> None:
    atomic_write(obj, filepath)


def _put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
    atomic_write(obj.encode(encoding), filepath)


LocalBackend.put = _put
LocalBackend.put_text = _put_text
