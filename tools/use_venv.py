"""Imported first by ``tools/train.py`` and ``tools/test.py``: run under the checkout's ``.venv`` when the Python
that started the tool lacks mimlab's dependencies (``python tools/train.py ...`` after ``bash tools/run_demo.sh``,
which installs into ``.venv``, in a shell where it is not activated)."""

import os
import sys

try:
    import mmengine  # noqa: F401
except ImportError:
    _python = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, '.venv', 'bin', 'python')
    if not os.path.isfile(_python) or os.environ.get('MIMLAB_VENV_EXEC'):
        raise
    os.environ['MIMLAB_VENV_EXEC'] = '1'  # once: a .venv without mmengine fails with the ImportError above
    os.execv(_python, [_python, *sys.argv])
