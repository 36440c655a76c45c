"""Print the environment for a bug report or a benchmark: python tools/misc/collect_env.py.

mmengine's summary (Python, CUDA, compilers, PyTorch build, OpenCV, MMEngine) plus mimlab's version, MMCV, timm,
Pillow, the C extension ``mimlab._jpeg`` and the libjpeg-turbo versions, as ``key: value`` lines
(:func:`mimlab.utils.collect_env`).
"""

import argparse


def main(argv=None) -> dict:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    from mimlab.utils import collect_env
    from mimlab.utils.collect_env import format_env

    env = collect_env()
    print(format_env(env))
    return env


if __name__ == '__main__':
    main()
