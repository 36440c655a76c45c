"""The optimiser constructor: weight-decay exemptions, per-name lr multipliers, (depth, decay, lr) grouping."""

from pathlib import Path

import pytest
import torch

from mimlab.registry import OPTIM_WRAPPER_CONSTRUCTORS
from tests.helpers import tiny_mae

ROOT = Path(__file__).resolve().parents[1]


def _mae():
    return tiny_mae(decoder_depth=2)


def _build(model, **paramwise):
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='LayerDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(
                type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05)
            ),
            paramwise_cfg=paramwise or None,
        )
    )
    return constructor(model).optimizer


def test_mae_weight_decay_exemptions():
    model = _mae()
    opt = _build(model)
    wd = {n: g['weight_decay'] for g in opt.param_groups for n in g['param_names']}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(wd) == trainable  # every trainable parameter exactly once; frozen pos tables excluded
    assert 'backbone.pos_embed' not in wd and 'neck.decoder_pos_embed' not in wd
    for name, value in wd.items():
        p = dict(model.named_parameters())[name]
        exempt = p.ndim <= 1 or name.endswith(('cls_token', 'mask_token'))
        assert value == (0.0 if exempt else 0.05), name
    assert wd['backbone.cls_token'] == 0.0 and wd['neck.mask_token'] == 0.0
    assert wd['backbone.layers.0.ln1.weight'] == 0.0 and wd['backbone.layers.0.attn.qkv.bias'] == 0.0
    assert wd['backbone.layers.0.attn.qkv.weight'] == 0.05
    assert len(opt.param_groups) == 2
    assert all(g['lr'] == pytest.approx(1e-3) for g in opt.param_groups)


def test_layer_decay_scales_and_group_count():
    model = _mae()
    opt = _build(model, layer_decay_rate=0.5)
    lr = {n: g['lr'] for g in opt.param_groups for n in g['param_names']}
    # test arch: 2 blocks -> num_layers = 4; scale = 0.5 ** (4 - depth - 1)
    assert lr['backbone.patch_embed.projection.weight'] == pytest.approx(1e-3 * 0.5**3)
    assert lr['backbone.layers.0.attn.qkv.weight'] == pytest.approx(1e-3 * 0.5**2)
    assert lr['backbone.layers.1.attn.qkv.weight'] == pytest.approx(1e-3 * 0.5**1)
    assert lr['backbone.ln1.weight'] == pytest.approx(1e-3)
    assert lr['neck.decoder_embed.weight'] == pytest.approx(1e-3)
    # groups are (depth, decay) pairs: at most 2 per depth, independent of the parameter count
    assert len(opt.param_groups) <= 2 * 4


def test_optimizer_step_changes_weights():
    model = _mae()
    opt = _build(model)
    before = model.backbone.layers[0].attn.qkv.weight.detach().clone()
    loss = model.loss(torch.randn(2, 3, 32, 32))['loss']
    loss.backward()
    opt.step()
    assert not torch.equal(before, model.backbone.layers[0].attn.qkv.weight)


def test_lr_mult_and_extra_no_weight_decay_by_name():
    model = _mae()
    opt = _build(model, lr_mult={'mask_token': 0.1}, no_weight_decay=['backbone.patch_embed.projection.weight'])
    lr = {n: g['lr'] for g in opt.param_groups for n in g['param_names']}
    wd = {n: g['weight_decay'] for g in opt.param_groups for n in g['param_names']}
    # 'mask_token' is a dotted suffix of neck.mask_token; nothing else ends in it
    assert lr['neck.mask_token'] == pytest.approx(1e-4) and wd['neck.mask_token'] == 0.0
    assert all(v == pytest.approx(1e-3) for n, v in lr.items() if n != 'neck.mask_token')
    assert wd['backbone.patch_embed.projection.weight'] == 0.0  # 4-D, exempted by name
    assert wd['backbone.layers.0.attn.qkv.weight'] == 0.05
    assert len(opt.param_groups) == 3  # (decay), (no decay), (no decay, x0.1)


def test_lr_mult_multiplies_layer_decay():
    model = _mae()
    opt = _build(model, layer_decay_rate=0.5, lr_mult={'backbone.layers.0.attn.qkv.weight': 0.1})
    lr = {n: g['lr'] for g in opt.param_groups for n in g['param_names']}
    assert lr['backbone.layers.0.attn.qkv.weight'] == pytest.approx(1e-3 * 0.5**2 * 0.1)
    assert lr['backbone.layers.0.attn.proj.weight'] == pytest.approx(1e-3 * 0.5**2)


@pytest.mark.parametrize(
    'paramwise, message',
    [
        (dict(custom_keys={'mask_token': dict(lr_mult=0.1)}), r"\['custom_keys'\] not understood"),
        (dict(norm_decay_mult=0.0), r"\['norm_decay_mult'\] not understood"),
        (dict(lr_mult={'mask_tokn': 0.1}), r"paramwise_cfg.lr_mult: \['mask_tokn'\] match no parameter"),
        (dict(lr_mult={'token': 0.1}), r"lr_mult: \['token'\] match no parameter"),  # a suffix is a whole component
        (dict(no_weight_decay=['gamma']), r"no_weight_decay: \['gamma'\] match no parameter"),
    ],
)
def test_unknown_options_and_names_are_errors(paramwise, message):
    with pytest.raises(ValueError, match=message):
        _build(_mae(), **paramwise)


# openmixup's paramwise rules for A2MIM (reference/a2mim_mixmim.md, Part I section 4), as mmengine's custom_keys: the
# recipes used these until the rules moved into LayerDecayOptimWrapperConstructor (lr_mult, no_weight_decay)
_NORM_BIAS = dict(norm_decay_mult=0.0, bias_decay_mult=0.0)
_MASK_TOKEN = {'mask_token': dict(lr_mult=0.1, decay_mult=0.0)}
_MASK_GAMMA = {'mask_gamma': dict(lr_mult=0.1, decay_mult=0.0)}
# openmixup's norm regex (bn|ln|gn)(\d+)?.(weight|bias) misses ResNet's downsample BN weights: decayed
_DOWNSAMPLE_BN = {'downsample.1.weight': dict(decay_mult=1.0)}
_OPENMIXUP_A2MIM = {
    'resnet-300e': dict(**_NORM_BIAS, custom_keys={**_MASK_TOKEN, **_DOWNSAMPLE_BN}),  # mask_gamma decayed, full lr
    'resnet50-100e': dict(**_NORM_BIAS, custom_keys={**_MASK_TOKEN, **_MASK_GAMMA, **_DOWNSAMPLE_BN}),
    'convnext': dict(**_NORM_BIAS, custom_keys={**_MASK_TOKEN, **_MASK_GAMMA, 'gamma': dict(decay_mult=0.0)}),
    'vit': dict(
        **_NORM_BIAS,
        custom_keys={
            k: dict(decay_mult=0.0)
            for k in ('pos_embed', 'cls_token', 'mask_token', 'gamma', 'relative_position_bias_table')
        },
    ),
}


def _openmixup_rule(name: str) -> str:
    if 'convnext' in name:
        return 'convnext'
    if 'vit' in name:
        return 'vit'
    return 'resnet50-100e' if '100e' in name else 'resnet-300e'


A2MIM_RECIPES = sorted((ROOT / 'configs/a2mim').glob('*.py')) + sorted((ROOT / 'configs/demo').glob('a2mim_*.py'))


@pytest.mark.parametrize('path', A2MIM_RECIPES, ids=lambda p: p.stem)
def test_a2mim_recipes_give_every_parameter_openmixups_lr_and_weight_decay(path):
    """Each A2MIM recipe's optimizer equals mmengine's DefaultOptimWrapperConstructor with openmixup's rules, per
    parameter (tiny archs: the same parameter names per block)."""
    from mmengine.config import Config

    from mimlab.registry import MODELS
    from tests.test_configs import TINY_BACKBONE

    cfg = Config.fromfile(str(path))
    model_cfg = cfg.model.to_dict()
    model_cfg['backbone'].update(TINY_BACKBONE[model_cfg['backbone']['type']])
    model = MODELS.build(model_cfg)
    optim = dict(cfg.optim_wrapper.to_dict(), type='OptimWrapper')
    optim.pop('loss_scale', None)

    def groups(constructor: str, paramwise: dict) -> dict:
        wrapper = OPTIM_WRAPPER_CONSTRUCTORS.build(
            dict(type=constructor, optim_wrapper_cfg=optim, paramwise_cfg=paramwise)
        )(model)
        names = {id(p): n for n, p in model.named_parameters()}
        return {names[id(p)]: (g['lr'], g['weight_decay']) for g in wrapper.optimizer.param_groups for p in g['params']}

    ours = groups(optim.pop('constructor'), optim.pop('paramwise_cfg', None))
    reference = groups('DefaultOptimWrapperConstructor', _OPENMIXUP_A2MIM[_openmixup_rule(path.stem)])
    assert ours == reference
