import os
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('OMP_NUM_THREADS', '2')
warnings.filterwarnings('ignore')


@pytest.fixture(scope='session', autouse=True)
def _mimlab_scope():
    from mimlab.apis import register_all_modules

    register_all_modules()


@pytest.fixture
def repo_root() -> Path:
    return ROOT
