"""The environment a bug report or a benchmark should state, behind ``tools/misc/collect_env.py``."""

import os
import os.path as osp
import re
import shutil
import subprocess


def _git_hash(path: str) -> str | None:
    """Short commit of the checkout holding ``path``, None outside a git checkout (an installed wheel)."""
    if shutil.which('git') is None:
        return None
    try:
        out = subprocess.run(
            ['git', '-C', path, 'rev-parse', '--short=7', 'HEAD'], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _linked_libjpeg_version(extension_path: str) -> str:
    """The libjpeg-turbo version of the library ``extension_path`` links, as the dynamic loader resolves it (``ldd``),
    read from the version string libjpeg-turbo carries for its error messages; 'unknown' where that fails."""
    if shutil.which('ldd') is None:
        return 'unknown (no ldd)'
    try:
        out = subprocess.run(['ldd', extension_path], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    found = re.search(r'(libjpeg\S*)\s*=>\s*(\S+)', out)
    if not found or not osp.isfile(found.group(2)):
        return 'unknown'
    with open(found.group(2), 'rb') as f:
        version = re.search(rb'libjpeg-turbo version ([0-9][0-9.]*)', f.read())
    library = osp.realpath(found.group(2))
    return f'{version.group(1).decode()} ({library})' if version else f'unknown, not libjpeg-turbo? ({library})'


def _version(module_name: str) -> str:
    try:
        module = __import__(module_name)
    except ImportError:
        return 'not installed'
    return getattr(module, '__version__', 'unknown')


def collect_env() -> dict[str, str]:
    """mmengine's environment summary (Python, CUDA, compilers, PyTorch build, OpenCV, MMEngine) plus mimlab's.

    Added: ``mimlab`` (version, and ``+<commit>`` in a git checkout), ``MMCV``, ``timm``, ``Pillow`` and the
    libjpeg-turbo Pillow was built with, whether the C extension ``mimlab._jpeg`` is built, the libjpeg-turbo it
    links and the resize kernels it uses (AVX-512, AVX2 or portable C, picked from the CPU), and
    ``MIMLAB_RESAMPLE_SIMD`` (the cap on that choice).

    Returns:
        Name -> value, in print order.
    """
    import PIL
    from mmengine.utils.dl_utils import collect_env as collect_base_env
    from PIL import features

    from mimlab.version import __version__

    env = dict(collect_base_env())
    package_dir = osp.dirname(osp.dirname(osp.abspath(__file__)))  # mimlab/, found from this file
    commit = _git_hash(package_dir)
    env['mimlab'] = __version__ + (f'+{commit}' if commit else '')
    env['MMCV'] = _version('mmcv')
    env['timm'] = _version('timm')
    env['Pillow'] = PIL.__version__
    env['libjpeg-turbo (Pillow)'] = features.version('libjpeg_turbo') or 'not used'
    try:
        from mimlab import _jpeg
    except ImportError as e:
        env['mimlab._jpeg'] = f'not built ({e}): images are decoded whole by cv2, resized by Pillow'
    else:
        env['mimlab._jpeg'] = f'built ({_jpeg.__file__})'
        env['libjpeg-turbo (mimlab._jpeg)'] = _linked_libjpeg_version(_jpeg.__file__)
        kernels = getattr(_jpeg, 'resample_kernels', None)  # None: an extension built before it existed
        env['resize kernels (mimlab._jpeg)'] = kernels() if kernels else 'unknown (rebuild the extension)'
    cap = os.environ.get('MIMLAB_RESAMPLE_SIMD')
    env['MIMLAB_RESAMPLE_SIMD'] = cap if cap is not None else 'unset (no cap on the kernels)'
    return env


def format_env(env: dict[str, str]) -> str:
    """``key: value`` lines."""
    return '\n'.join(f'{k}: {v}' for k, v in env.items())
