"""The papers' own config paths, mapped to mimlab's recipes (``tools/train.py``, ``tools/test.py`` and the launchers).

The PixMIM, SimMIM, MixMIM and A2MIM READMEs give commands with their toolbox's paths. mimlab keeps mmpretrain's
layout (``configs/<algo>/...``, ``configs/<algo>/benchmarks/...``), so mmpretrain's paths exist verbatim; the others
are translated here, one rule per toolbox (``docs/train_and_test.md`` lists them):

===================================================================  =================================================
upstream path                                                        mimlab recipe
===================================================================  =================================================
mmselfsup 1.x ``configs/selfsup/<algo>/<name>.py``                   ``configs/<algo>/<name>.py``
mmselfsup 1.x ``configs/selfsup/<algo>/classification/<name>.py``    ``configs/<algo>/benchmarks/<name>.py``
mmselfsup 0.x ``configs/benchmarks/classification/<data>/<name>.py`` the one ``configs/*/benchmarks/<name>.py``, or
                                                                     a renamed one (:data:`MMSELFSUP_RENAMED`)
openmixup ``configs/openmixup/pretrain/a2mim/<data>/<name>.py``,     :data:`OPENMIXUP_A2MIM` (openmixup's names
A2MIM repo ``configs/selfsup/a2mim/<data>/<name>.py``                 encode backbone, layer and epochs differently)
openmixup ``configs/openmixup/finetune/<data>/<name>.py`` (and        :data:`OPENMIXUP_FINETUNE`
its ``configs/benchmarks/classification/<data>/<name>.py``)
===================================================================  =================================================

A path that is neither a file nor translatable raises :class:`ConfigPathError` listing the nearest recipe names.
"""

import difflib
import os
import os.path as osp
from pathlib import Path

__all__ = [
    'OPENMIXUP_A2MIM',
    'OPENMIXUP_FINETUNE',
    'MMSELFSUP_RENAMED',
    'ConfigPathError',
    'config_path_for',
    'resolve_config_path',
    'configs_root',
]

# openmixup / A2MIM repo config name -> mimlab recipe (the header comment of each recipe names its source)
OPENMIXUP_A2MIM = {
    'r50_l3_sz224_init_8xb256_cos_ep100': 'a2mim/a2mim_resnet50-l3_8xb256-coslr-100e_in1k.py',
    'r50_l3_sz224_init_8xb256_cos_ep300': 'a2mim/a2mim_resnet50-l3_8xb256-coslr-300e_in1k.py',
    'r101_l3_sz224_init_8xb256_cos_ep300': 'a2mim/a2mim_resnet101-l3_8xb256-coslr-300e_in1k.py',
    'r152_l3_sz224_init_8xb256_cos_ep300': 'a2mim/a2mim_resnet152-l3_8xb256-coslr-300e_in1k.py',
    'r200_l3_sz224_init_8xb256_cos_ep300': 'a2mim/a2mim_resnet200-l3_8xb256-coslr-300e_in1k.py',
    'convnext_t_l3_sz224_init_8xb256_cos_ep300': 'a2mim/a2mim_convnext-tiny-l3_8xb256-amp-coslr-300e_in1k.py',
    'convnext_s_l3_sz224_init_8xb256_cos_ep300': 'a2mim/a2mim_convnext-small-l3_8xb256-amp-coslr-300e_in1k.py',
    'convnext_b_l3_sz224_init_8xb256_cos_ep300': 'a2mim/a2mim_convnext-base-l3_8xb256-amp-coslr-300e_in1k.py',
    'vit_small_l0_sz224_8xb256_step_ep800': 'a2mim/a2mim_vit-small-p16-l0_8xb256-step-800e_in1k.py',
    'vit_base_l0_sz224_8xb128_accu2_step_ep800': 'a2mim/a2mim_vit-base-p16-l0_8xb128-accu2-step-800e_in1k.py',
    'vit_large_l0_sz224_8xb128_accu2_step_ep800': 'a2mim/a2mim_vit-large-p16-l0_8xb128-accu2-step-800e_in1k.py',
}

# openmixup fine-tuning config name (configs/openmixup/finetune/<data>/, openmixup's configs/benchmarks/classification/
# <data>/) -> mimlab recipe: the A2MIM results table's protocols (docs/a2mim.md)
_FT = 'a2mim/benchmarks/'
OPENMIXUP_FINETUNE = {
    'r50_rsb_a3_ft_sz160_4xb512_cos_fp16_ep100': _FT + 'resnet50_4xb512-rsb-a3-amp-coslr-100e_in1k-160px.py',
    'r50_rsb_a2_ft_sz224_8xb256_cos_fp16_ep300': _FT + 'resnet50_8xb256-rsb-a2-amp-coslr-300e_in1k.py',
    'r101_rsb_a2_ft_sz224_8xb256_cos_fp16_ep300': _FT + 'resnet101_8xb256-rsb-a2-amp-coslr-300e_in1k.py',
    'r152_rsb_a2_ft_sz224_8xb256_cos_fp16_ep300': _FT + 'resnet152_8xb256-rsb-a2-amp-coslr-300e_in1k.py',
    'r200_rsb_a2_ft_sz224_8xb256_cos_fp16_ep300': _FT + 'resnet200_8xb256-rsb-a2-amp-coslr-300e_in1k.py',
    'convnext_s_spark_ft_sz224_8xb256_cos_fp16_ep300': _FT + 'convnext-small_8xb256-accu2-amp-coslr-300e_in1k.py',
    'convnext_b_spark_ft_sz224_8xb256_cos_fp16_ep300': _FT + 'convnext-base_8xb256-accu2-amp-coslr-300e_in1k.py',
    'vit_small_p16_swin_ft_simmim_sz224_8xb128_cos_ep100': _FT + 'vit-small-p16_8xb128-amp-coslr-100e_in1k.py',
    'vit_small_p16_swin_ft_simmim_sz224_8xb128_cos_ep200': _FT + 'vit-small-p16_8xb128-amp-coslr-200e_in1k.py',
    'vit_base_p16_swin_ft_simmim_sz224_4xb128_accu2_cos_ep100': _FT
    + 'vit-base-p16_4xb128-accu2-amp-coslr-100e_in1k.py',
    'vit_large_p16_swin_ft_simmim_sz224_8xb64_accu2_cos_ep100': _FT
    + 'vit-large-p16_8xb64-accu2-amp-coslr-100e_in1k.py',
    'vit_large_p16_swin_ft_simmim_sz224_8xb64_accu2_cos_ep150': _FT
    + 'vit-large-p16_8xb64-accu2-amp-coslr-150e_in1k.py',
}

# mmselfsup names that mmpretrain (and so mimlab) renamed: MAE's evaluation recipes (1.x
# configs/selfsup/mae/classification/, 0.x configs/benchmarks/classification/imagenet/) and MixMIM's pretraining
MMSELFSUP_RENAMED = {
    'vit-base-p16_linear-8xb2048-coslr-90e_in1k': 'mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py',
    'vit-base-p16_ft-8xb128-coslr-100e_in1k': 'mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py',
    'vit-large-p16_linear-8xb2048-coslr-90e_in1k': 'mae/benchmarks/vit-large-p16_8xb2048-linear-coslr-90e_in1k.py',
    'vit-large-p16_ft-8xb128-coslr-50e_in1k': 'mae/benchmarks/vit-large-p16_8xb128-coslr-50e_in1k.py',
    'mixmim-base-p16_16xb128-coslr-300e_in1k': 'mixmim/mixmim_mixmim-base_16xb128-coslr-300e_in1k.py',
}


class ConfigPathError(FileNotFoundError):
    """A config path that is no file and has no mimlab equivalent; the message lists the nearest recipes."""


def configs_root() -> Path:
    """mimlab's ``configs/`` folder: beside the package in a checkout, else ``./configs``."""
    beside = Path(__file__).resolve().parents[2] / 'configs'
    return beside if beside.is_dir() else Path('configs').resolve()


def _recipes(root: Path) -> list[str]:
    """Every recipe under ``root``, as ``<algo>/[benchmarks/]<name>.py`` (``_base_`` files are not recipes)."""
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob('*.py') if '_base_' not in p.relative_to(root).parts
    )


def _translate(parts: list[str], root: Path, recipes: list[str]) -> str | None:
    """The recipe (relative to ``root``) an upstream path's parts after ``configs/`` name, or None."""
    name = parts[-1]
    stem = osp.splitext(name)[0]
    if parts[:2] == ['openmixup', 'pretrain'] and 'a2mim' in parts or parts[:2] == ['selfsup', 'a2mim']:
        return OPENMIXUP_A2MIM.get(stem)
    if parts[:2] == ['openmixup', 'finetune']:
        return OPENMIXUP_FINETUNE.get(stem)
    if parts[0] == 'selfsup' and len(parts) == 4 and parts[2] == 'classification':
        same = f'{parts[1]}/benchmarks/{name}'
        return same if same in recipes else MMSELFSUP_RENAMED.get(stem)
    if parts[0] == 'selfsup' and len(parts) == 3:
        same = f'{parts[1]}/{name}'
        return same if same in recipes else MMSELFSUP_RENAMED.get(stem)
    if parts[:2] == ['benchmarks', 'classification']:
        found = [r for r in recipes if r.endswith(f'/benchmarks/{name}')]
        return found[0] if len(found) == 1 else MMSELFSUP_RENAMED.get(stem, OPENMIXUP_FINETUNE.get(stem))
    return None


def config_path_for(path: str) -> tuple[str, str | None]:
    """The config file to load for ``path``, and a one-line note when it was translated (None otherwise).

    Args:
        path: What the user passed: an existing file, or a path in mmselfsup's, mmpretrain's or openmixup's layout.

    Returns:
        ``(file, note)``: ``path`` itself when it is a file; else the mimlab recipe and a line naming both.

    Raises:
        ConfigPathError: ``path`` is no file and no rule maps it to an existing recipe; the message lists the
            nearest recipe names.
    """
    if osp.isfile(path):
        return path, None
    root = configs_root()
    recipes = _recipes(root)
    parts = Path(path).as_posix().split('/')
    if 'configs' in parts:
        parts = parts[len(parts) - parts[::-1].index('configs') :]  # what follows the last 'configs/'
    target = _translate(parts, root, recipes) if parts else None
    if target is not None and (root / target).is_file():
        resolved = (root / target).as_posix()
        shown = osp.relpath(resolved) if not osp.relpath(resolved).startswith('..') else resolved
        return resolved, f"{path} is an upstream path: running the same recipe as mimlab's {shown}"
    stem = osp.splitext(osp.basename(path))[0]
    by_stem = {osp.splitext(osp.basename(r))[0]: r for r in recipes}
    by_stem.update({**OPENMIXUP_A2MIM, **OPENMIXUP_FINETUNE})
    near = difflib.get_close_matches(stem, list(by_stem), n=5, cutoff=0.4)
    hint = '; nearest recipes: ' + ', '.join(f'configs/{by_stem[n]}' for n in near) if near else ''
    raise ConfigPathError(
        f'config {path} does not exist, and no mimlab recipe corresponds to it{hint} '
        f'(all recipes: ls {osp.relpath(root) if os.getcwd() in str(root) else root}/*/)'
    )


def resolve_config_path(path: str) -> str:
    """:func:`config_path_for`, printing its note (once per launch) when the path was translated."""
    resolved, message = config_path_for(path)
    if message:
        from mimlab.utils import launch_rank

        if launch_rank() == 0:
            print(message, flush=True)
    return resolved
