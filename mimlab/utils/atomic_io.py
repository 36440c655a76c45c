"""Atomic writes for mmengine's local file backend, so a killed job never leaves a truncated checkpoint.

mmengine writes checkpoints and the ``last_checkpoint`` pointer with ``LocalBackend.put``/``put_text``, which open
the destination and write into it: a job killed (preempted, out of memory) in the middle leaves a truncated file that
``--resume`` then trips over. mimlab replaces both methods (on import of :mod:`mimlab.utils`) with writes to a
temporary file in the same folder, ``fsync``, then ``os.replace`` — atomic on POSIX file systems: readers see the old
file or the new one, never a part.

A process killed between creating the temporary file and the rename (SIGKILL, out of memory, node failure) leaves it
behind: ``.{name}.{8 random characters}.tmp`` next to ``name`` (the pattern of :func:`interrupted_writes`), as large
as the checkpoint. :class:`~mimlab.engine.hooks.AtomicCheckpointHook` removes such leftovers when a run starts.
"""

import os
import re
import tempfile
from pathlib import Path

from mmengine.fileio.backends.local_backend import LocalBackend

# tempfile.mkstemp's names: prefix + 8 characters of tempfile._RandomNameSequence's alphabet + suffix
_TMP_PREFIX, _TMP_SUFFIX = '.', '.tmp'
_TMP_NAME = re.compile(r'^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$')


def atomic_write(data: bytes, filepath: str | Path) -> None:
    """Write ``data`` to ``filepath`` atomically (temporary file in the same folder + ``os.replace``)."""
    filepath = os.fspath(filepath)
    folder = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'{_TMP_PREFIX}{os.path.basename(filepath)}.', suffix=_TMP_SUFFIX)
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


def interrupted_writes(folder: str | Path) -> list[tuple[str, str]]:
    """The temporary files of :func:`atomic_write` in ``folder`` (not its subfolders), left by interrupted writes.

    Returns:
        ``(path, target name)`` pairs, sorted; only plain files named ``.{target}.{8 characters}.tmp``.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return []
    found = []
    for entry in os.scandir(folder):
        match = _TMP_NAME.match(entry.name)
        if match and entry.is_file(follow_symlinks=False):
            found.append((entry.path, match['target']))
    return sorted(found)


def _put(self, obj: bytes, filepath) -> None:
    atomic_write(obj, filepath)


def _put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
    atomic_write(obj.encode(encoding), filepath)


LocalBackend.put = _put
LocalBackend.put_text = _put_text
