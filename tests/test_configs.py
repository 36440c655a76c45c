"""Every config under configs/ parses, builds, and takes one optimiser step on a 2-image batch (tiny overrides)."""

import ast
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate

from mimlab.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS, TRANSFORMS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts)
IMG = 32
MIXMIM_TINY = dict(embed_dims=16, depths=[1, 1, 1], num_heads=[1, 2, 4])

# Overrides that keep the structure of a recipe but make it tiny: by backbone type, then by algorithm type.
TINY_BACKBONE = {
    'MAEViT': dict(arch='test', img_size=IMG, patch_size=8),
    'VisionTransformer': dict(arch='test', img_size=IMG, patch_size=8, init_cfg=None),
    'SimMIMViT': dict(arch='test', img_size=IMG, patch_size=8),
    'SimMIMSwinTransformer': dict(arch='test', img_size=IMG, window_size=2, pad_small_map=True),
    'SwinTransformer': dict(arch='test', img_size=IMG, window_size=2, pad_small_map=True, init_cfg=None),
    # A2MIM: masks at stride 16 (ResNet l3, ViT p16) or 32 (ConvNeXt l3): 2x2 / 1x1 grids at 32 px
    'MIMResNet': dict(depth='test', zero_init_residual=False),  # zero-init residual BNs would stop the gradient
    'MIMConvNeXt': dict(arch='test'),
    # fine-tuning recipes of A2MIM's table (configs/a2mim/benchmarks)
    'ResNet': dict(depth='test', zero_init_residual=False, init_cfg=None),
    'ConvNeXt': dict(arch='test', init_cfg=None),
    'A2MIMViT': dict(arch='test', img_size=IMG, patch_size=16),
    # three stages: a 2x2 output grid of 16-px cells at 32 px, so that mixing takes tokens from both images
    'MixMIMPretrainTransformer': dict(arch=MIXMIM_TINY, img_size=IMG, window_size=[4, 4, 2]),
    'MixMIMTransformer': dict(arch=MIXMIM_TINY, img_size=IMG, window_size=[4, 4, 2], init_cfg=None),
}
TINY = {
    'MAE': dict(neck=dict(decoder_embed_dims=16, decoder_depth=1, decoder_num_heads=2)),
    'PixMIM': dict(neck=dict(decoder_embed_dims=16, decoder_depth=1, decoder_num_heads=2)),
    'SimMIM': dict(),
    'A2MIM': dict(),
    'ImageClassifier': dict(neck=dict(input_features=32), head=dict(in_channels=32)),
    'ImageClassifier/no-neck': dict(head=dict(in_channels=32)),
    'ImageClassifier/SwinTransformer': dict(head=dict(in_channels=128)),
    'ImageClassifier/MixMIMTransformer': dict(head=dict(in_channels=64)),
    'ImageClassifier/ResNet': dict(head=dict(in_channels=256)),
    'ImageClassifier/ConvNeXt': dict(head=dict(in_channels=64)),
    'MixMIM': dict(neck=dict(decoder_embed_dims=16, decoder_depth=1, decoder_num_heads=2)),
}


def _tiny_model_cfg(cfg: Config) -> dict:
    model = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    variant = model['backbone']['type'] if model.get('neck') is not None else 'no-neck'
    overrides = TINY.get(
        f'{model["type"]}/{model["backbone"]["type"]}', TINY.get(f'{model["type"]}/{variant}', TINY.get(model['type']))
    )
    assert overrides is not None, f'add tiny overrides for algorithm {model["type"]} to tests/test_configs.py'
    backbone = TINY_BACKBONE.get(model['backbone']['type'])
    assert backbone is not None, f'add tiny overrides for backbone {model["backbone"]["type"]}'
    model['backbone'] = {**model['backbone'], **backbone}
    for key, sub in overrides.items():
        if model.get(key) is not None:
            model[key] = {**model[key], **sub}
    if model.get('target_generator') is not None:
        model['target_generator'] = {**model['target_generator'], 'img_size': IMG, 'radius': 6}
    if model['backbone'].get('frozen_stages', -1) > 0:  # keep 'all blocks frozen' recipes fully frozen
        model['backbone']['frozen_stages'] = 2
    if 'data_preprocessor' in cfg and 'data_preprocessor' not in model:
        model['data_preprocessor'] = cfg.data_preprocessor
    return model


def _tiny_pipeline(pipeline: list, keep_model_patch: bool = False) -> list:
    out = []
    for t in pipeline:
        t = dict(t)
        if 'scale' in t and t['type'].endswith('Crop'):
            t['scale'] = IMG
        if t['type'] == 'SimMIMMaskGenerator' and keep_model_patch:  # A2MIM: the stride of the mask site (16 / 32)
            t.update(input_size=IMG, mask_patch_size=max(16, t['model_patch_size']))
        elif t['type'] == 'SimMIMMaskGenerator':  # the tiny models' patch grids: 4 px (Swin) or 8 px (ViT)
            t.update(input_size=IMG, mask_patch_size=16, model_patch_size=min(t['model_patch_size'], 8))
        out.append(t)
    return out


@pytest.fixture(scope='module')
def image_files(tmp_path_factory):
    from mimlab.datasets.builtin import write_builtin_dataset

    root = tmp_path_factory.mktemp('builtin')
    write_builtin_dataset(str(root), num_train=2, num_val=0, img_size=48, fmt='jpg')
    files = sorted((root / 'train').rglob('*.jpg'))
    assert len(files) == 2
    return files


def test_config_list_is_complete():
    names = {Path(c).name for c in CONFIGS}
    for epochs in (300, 400, 800, 1600):
        assert f'mae_vit-base-p16_8xb512-amp-coslr-{epochs}e_in1k.py' in names
    for epochs in (400, 800, 1600):
        assert f'mae_vit-large-p16_8xb512-amp-coslr-{epochs}e_in1k.py' in names
    assert 'mae_vit-huge-p14_8xb512-amp-coslr-1600e_in1k.py' in names


def _assignments(path: Path) -> dict[str, list[ast.expr]]:
    """Top-level ``name = value`` statements of a config file, by name."""
    out: dict[str, list[ast.expr]] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out.setdefault(target.id, []).append(node.value)
    return out


def _bases(path: Path) -> list[Path]:
    value = _assignments(path).get('_base_', [])
    if not value:
        return []
    bases = ast.literal_eval(value[-1])
    return [(path.parent / b).resolve() for b in ([bases] if isinstance(bases, str) else bases)]


def _is_base_file(path: Path) -> bool:
    return '_base_' in path.relative_to(ROOT / 'configs').parts


ALL_CONFIG_FILES = sorted((ROOT / 'configs').rglob('*.py'))


@pytest.mark.parametrize('path', ALL_CONFIG_FILES, ids=lambda p: str(p.relative_to(ROOT / 'configs')))
def test_configs_are_shallow(path):
    """``_base_`` files plus at most one recipe parent, itself built from ``_base_`` files only (STYLE.md 7)."""
    recipes = [b for b in _bases(path) if not _is_base_file(b)]
    if _is_base_file(path):
        assert not recipes, f'a _base_ file inherits from a recipe: {recipes}'
        return
    assert len(recipes) <= 1, f'more than one recipe parent: {recipes}'
    for parent in recipes:
        grand = [b for b in _bases(parent) if not _is_base_file(b)]
        assert not grand, f'{parent.name} is a recipe parent with a recipe parent of its own ({grand[0].name})'


@pytest.mark.parametrize('path', ALL_CONFIG_FILES, ids=lambda p: str(p.relative_to(ROOT / 'configs')))
def test_train_cfg_is_set_once_and_only_to_change_it(path):
    """No file sets ``train_cfg`` twice, and a file that sets it changes every key it names from what its parents
    resolve to (no restated ``max_epochs=300`` over a parent's 300)."""
    own = _assignments(path).get('train_cfg', [])
    assert len(own) <= 1
    if not own or not isinstance(own[0], ast.Call):
        return
    keys = [kw.arg for kw in own[0].keywords if kw.arg not in (None, '_delete_')]
    mine = Config.fromfile(str(path)).train_cfg
    for base in _bases(path):
        theirs = Config.fromfile(str(base)).get('train_cfg') or {}
        same = [k for k in keys if k in theirs and theirs[k] == mine[k]]
        assert not same, f'train_cfg restates {same} of {base.relative_to(ROOT)}'


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_and_steps(config, image_files):
    cfg = Config.fromfile(str(ROOT / config))
    assert cfg.default_scope == 'mimlab'

    # every random draw seeded, so the outcome (e.g. stochastic depth dropping a branch for the whole 2-image batch,
    # which leaves it without a gradient) does not depend on the tests that ran before
    random.seed(0)
    np.random.seed(0)
    # the recipe's own pipeline on real image files (LoadImageFromFile when the recipe decodes files)
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline = [TRANSFORMS.build(t) for t in _tiny_pipeline(pipeline, keep_model_patch=cfg.model.type == 'A2MIM')]
    samples = []
    for i, path in enumerate(image_files):
        results = dict(img_path=str(path), sample_idx=i, gt_label=0)
        if pipeline and type(pipeline[0]).__name__ != 'LoadImageFromFile':
            import cv2

            img = cv2.imread(str(path))
            results.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        for t in pipeline:
            results = t(results)
        samples.append(results)
    batch = default_collate(samples)
    assert batch['inputs'].shape == (2, 3, IMG, IMG) and batch['inputs'].dtype == torch.uint8

    torch.manual_seed(0)
    model = MODELS.build(_tiny_model_cfg(cfg))
    model.init_weights()
    model.train()

    optim_cfg = dict(cfg.optim_wrapper)
    optim_cfg['type'] = 'OptimWrapper'  # AMP needs a GPU; the recipe's optimiser and param groups are kept
    optim_cfg.pop('loss_scale', None)
    optim_cfg.pop('dtype', None)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type=optim_cfg.pop('constructor', 'DefaultOptimWrapperConstructor'),
            optim_wrapper_cfg=optim_cfg,
            paramwise_cfg=optim_cfg.pop('paramwise_cfg', None),
        )
    )
    optim_wrapper = constructor(model)

    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not missing, f'no gradient for {missing}'
    optim_wrapper.step()
    optim_wrapper.zero_grad()
