"""ResNet and ConvNeXt backbones: keys, shapes and outputs equal mmpretrain 1.2.0's, freezing, drop path, contract."""

from contextlib import contextmanager
from functools import partial
from unittest import mock

import pytest
import torch
from mmengine.registry import DefaultScope
from torch import nn

from mimlab.models.backbones import ConvNeXt, ResNet
from mimlab.registry import MODELS

RESNET_DEPTHS = [18, 34, 50, 101, 152, 200]
CONVNEXT_ARCHS = ['atto', 'femto', 'pico', 'nano', 'tiny', 'small', 'base', 'large', 'xlarge', 'huge']


def _ref_resnet(depth, **kwargs):
    from mmpretrain.models.backbones import ResNet as Ref
    from mmpretrain.models.backbones.resnet import Bottleneck

    class RefWithTestDepths(Ref):
        # mmpretrain 1.2.0 has no depth 200 (timm / openmixup layout) and no tiny test depth
        arch_settings = {**Ref.arch_settings, 200: (Bottleneck, (3, 24, 36, 3)), 'test': (Bottleneck, (1, 1, 1, 1))}

    if depth == 'test':
        kwargs = dict(dict(stem_channels=16, base_channels=8), **kwargs)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return RefWithTestDepths(depth, **kwargs)


def _ref_convnext(arch, **kwargs):
    from mmpretrain.models.backbones import ConvNeXt as Ref

    arch = ConvNeXt.arch_settings['test'] if arch == 'test' else arch
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return Ref(arch, **kwargs)


@contextmanager
def _meta():
    """Build on the meta device (no memory, no init); mmpretrain calls ``.item()`` on its drop-path linspace."""
    with torch.device('meta'), mock.patch('torch.linspace', partial(torch.linspace, device='cpu')):
        yield


def _shapes(model: nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _perturb(model: nn.Module) -> nn.Module:
    """Non-trivial weights: BN statistics / affine, LayerScale and GRN away from their identity-like inits."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    for name, p in model.named_parameters():
        if name.endswith('gamma') or name.endswith('grn.beta'):
            p.data.normal_(0, 0.5)
    return model


def _assert_outputs_equal(ours, ref, x, train=False, atol=1e-5):
    ours.train(train), ref.train(train)  # mmpretrain's ResNet.train returns None: no chaining
    with torch.no_grad():
        outs, refs = ours(x), ref(x)
    assert len(outs) == len(refs) == len(ours.out_indices)
    for a, b in zip(outs, refs, strict=True):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=atol), (a - b).abs().max()


# ------------------------------------------------------------------------------------------------- ResNet


def test_resnet_arch_table_matches_mmpretrain():
    from mmpretrain.models.backbones import ResNet as Ref

    for depth, (block, blocks) in Ref.arch_settings.items():
        assert ResNet.arch_settings[depth][0].__name__ == block.__name__
        assert ResNet.arch_settings[depth][1] == blocks
    assert set(ResNet.arch_settings) - set(Ref.arch_settings) == {200, 'test'}


@pytest.mark.parametrize('depth', RESNET_DEPTHS)
def test_resnet_keys_and_shapes_equal_mmpretrain(depth):
    variants = [{}, dict(deep_stem=True, avg_down=True)] if depth == 50 else [{}]
    for kwargs in variants:
        with _meta():
            ours, ref = ResNet(depth, **kwargs), _ref_resnet(depth, **kwargs)
        assert _shapes(ours) == _shapes(ref), set(_shapes(ours)) ^ set(_shapes(ref))
        assert ours.feat_dim == ref.feat_dim


@pytest.mark.parametrize(
    'depth,kwargs',
    [
        ('test', dict(out_indices=(0, 1, 2, 3))),
        ('test', dict(out_indices=(1, 3), deep_stem=True, avg_down=True, style='caffe')),
        ('test', dict(strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), out_indices=(3,))),
        ('test', dict(num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1), out_indices=(-1,))),
        (18, dict(out_indices=(0, 1, 2, 3))),
        (50, dict(out_indices=(0, 1, 2, 3))),
    ],
)
def test_resnet_outputs_equal_mmpretrain(depth, kwargs):
    ref = _ref_resnet(
        depth, **{**kwargs, 'out_indices': [i % kwargs.get('num_stages', 4) for i in kwargs['out_indices']]}
    )
    ref.init_weights()
    _perturb(ref)
    ours = ResNet(depth, **kwargs)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    _assert_outputs_equal(ours, ref, x)
    if depth == 'test':  # train mode: batch statistics, and the running statistics they update
        _assert_outputs_equal(ours, ref, x, train=True)
        for (k, a), b in zip(ours.state_dict().items(), ref.state_dict().values(), strict=True):
            assert torch.allclose(a.float(), b.float(), atol=1e-6), k


@pytest.mark.parametrize('deep_stem', [False, True])
def test_resnet_frozen_stages_and_norm_eval_match_mmpretrain(deep_stem):
    for kwargs in (dict(frozen_stages=2), dict(frozen_stages=0, norm_eval=True)):
        ours, ref = ResNet('test', deep_stem=deep_stem, **kwargs), _ref_resnet('test', deep_stem=deep_stem, **kwargs)
        ours.train(), ref.train()
        frozen = {n for n, p in ours.named_parameters() if not p.requires_grad}
        assert frozen == {n for n, p in ref.named_parameters() if not p.requires_grad}
        bn_training = [
            {n for n, m in r.named_modules() if isinstance(m, nn.BatchNorm2d) and m.training} for r in (ours, ref)
        ]
        assert bn_training[0] == bn_training[1]
        if kwargs['frozen_stages'] == 2:
            stem = {'stem'} if deep_stem else {'conv1', 'bn1'}
            assert {n.split('.')[0] for n in frozen} == stem | {'layer1', 'layer2'}
            stem_bn = ours.stem[0].bn if deep_stem else ours.bn1
            assert not stem_bn.training and ours.layer3[0].bn1.training
        else:
            assert not any(m.training for m in ours.modules() if isinstance(m, nn.BatchNorm2d))


def test_resnet_requires_grad_false_in_norm_cfg():
    ours = ResNet('test', norm_cfg=dict(type='BN', requires_grad=False))
    assert all(not p.requires_grad for m in ours.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert ours.conv1.weight.requires_grad
    with pytest.raises(ValueError, match='GN'):
        ResNet('test', norm_cfg=dict(type='GN', num_groups=2))


def test_resnet_init_weights_like_mmpretrain():
    ours = ResNet(50)
    ours.init_weights()
    for m in ours.modules():
        if hasattr(m, 'last_norm'):
            assert not m.last_norm.weight.any() and not m.last_norm.bias.any()
    assert torch.equal(ours.layer1[0].bn1.weight, torch.ones(64))
    w = ours.layer4[0].conv2.weight  # kaiming normal, fan_out = 512 * 3 * 3
    assert abs(w.std().item() / (2 / (512 * 9)) ** 0.5 - 1) < 0.05
    # a second call (mmengine may call it after loading) re-draws nothing
    before = ours.conv1.weight.clone()
    ours.init_weights()
    assert torch.equal(before, ours.conv1.weight)
    # with zero_init_residual=False every BN starts at 1
    plain = ResNet('test', zero_init_residual=False)
    plain.init_weights()
    assert all(m.weight.eq(1).all() for m in plain.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize('cls,arch', [(ResNet, 'test'), (ConvNeXt, 'test')])
def test_pretrained_init_cfg_loads_instead_of_drawing(tmp_path, cls, arch):
    src = cls(arch)
    src.init_weights()
    _perturb(src)
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in src.state_dict().items()}}, path)
    dst = cls(arch, init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    dst.init_weights()  # no zero_init_residual / trunc-normal draw over the loaded weights
    assert all(torch.equal(v, dst.state_dict()[k]) for k, v in src.state_dict().items())


def test_resnet_drop_path_in_train_mode():
    ours = ResNet('test', drop_path_rate=0.5, out_indices=(3,))
    ref = _ref_resnet('test', drop_path_rate=0.5)
    rates = [getattr(m.drop_path, 'drop_prob', 0.0) for m in ours.modules() if hasattr(m, 'drop_path')]
    ref_rates = [getattr(m.drop_path, 'drop_prob', 0.0) for m in ref.modules() if hasattr(m, 'drop_path')]
    assert rates == pytest.approx(ref_rates) and rates[-1] == pytest.approx(0.5)
    ours.init_weights()
    _perturb(ours)
    ours.train()
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(0)
    out = ours(x)[0]
    out.square().mean().backward()
    assert torch.isfinite(out).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in ours.parameters())
    torch.manual_seed(1)
    with torch.no_grad():
        assert not torch.allclose(out, ours(x)[0])  # stochastic in train mode ...
        ours.eval()
        assert torch.equal(ours(x)[0], ours(x)[0])  # ... deterministic in eval mode


def test_resnet_layer_depth_one_per_block():
    with _meta():
        r50 = ResNet(50)
    assert r50.get_layer_depth('backbone.conv1.weight', 'backbone.') == (0, 18)
    assert r50.get_layer_depth('backbone.bn1.bias', 'backbone.') == (0, 18)
    assert r50.get_layer_depth('backbone.layer1.0.conv1.weight', 'backbone.') == (1, 18)
    assert r50.get_layer_depth('backbone.layer2.0.downsample.0.weight', 'backbone.') == (4, 18)
    assert r50.get_layer_depth('backbone.layer4.2.bn3.weight', 'backbone.') == (16, 18)
    assert r50.get_layer_depth('head.fc.weight', 'backbone.') == (17, 18)
    depths = {r50.get_layer_depth(n)[0] for n, _ in r50.named_parameters()}
    assert depths == set(range(17))
    assert r50.no_weight_decay() == set()
    deep = ResNet('test', deep_stem=True)
    assert deep.get_layer_depth('stem.2.bn.weight') == (0, 6)


# ------------------------------------------------------------------------------------------------ ConvNeXt


def test_convnext_arch_table_matches_mmpretrain():
    from mmpretrain.models.backbones import ConvNeXt as Ref

    assert {k: v for k, v in ConvNeXt.arch_settings.items() if k != 'test'} == Ref.arch_settings


@pytest.mark.parametrize('arch', CONVNEXT_ARCHS)
def test_convnext_keys_and_shapes_equal_mmpretrain(arch):
    variants = [dict(out_indices=-1)]
    if arch == 'tiny':
        variants += [
            dict(out_indices=(0, 1, 2, 3)),
            dict(use_grn=True, layer_scale_init_value=0.0),
            dict(use_grn=True, linear_pw_conv=False, stem_patch_size=2),
        ]
    for kwargs in variants:
        with _meta():
            ours, ref = ConvNeXt(arch, **kwargs), _ref_convnext(arch, **kwargs)
        assert _shapes(ours) == _shapes(ref), set(_shapes(ours)) ^ set(_shapes(ref))


@pytest.mark.parametrize(
    'arch,kwargs',
    [
        ('test', dict(out_indices=(0, 1, 2, 3))),
        ('test', dict(out_indices=(0, 1, 2, 3), gap_before_final_norm=False)),
        ('test', dict(out_indices=(1, 3), use_grn=True, layer_scale_init_value=0.0)),
        ('test', dict(out_indices=(2, 3), use_grn=True, linear_pw_conv=False, gap_before_final_norm=False)),
        ('tiny', dict()),
    ],
)
def test_convnext_outputs_equal_mmpretrain(arch, kwargs):
    ref = _ref_convnext(arch, **{**kwargs, 'out_indices': list(kwargs.get('out_indices', [-1]))})
    ref.init_weights()
    _perturb(ref)
    ours = ConvNeXt(arch, **kwargs)
    ours.load_state_dict(ref.state_dict(), strict=True)
    _assert_outputs_equal(ours, ref, torch.randn(2, 3, 64, 64))


def test_convnext_frozen_stages_match_mmpretrain():
    ours, ref = ConvNeXt('test', frozen_stages=2), _ref_convnext('test', frozen_stages=2)
    ours.train(), ref.train()
    frozen = {n for n, p in ours.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, p in ref.named_parameters() if not p.requires_grad}
    assert {'.'.join(n.split('.')[:2]) for n in frozen} == {
        'downsample_layers.0',
        'downsample_layers.1',
        'stages.0',
        'stages.1',
    }
    assert not ours.stages[1].training and ours.stages[2].training and ours.norm3.training


def test_convnext_drop_path_and_checkpointing_in_train_mode():
    ours = ConvNeXt('test', drop_path_rate=0.5, with_cp=True)
    ref = _ref_convnext('test', drop_path_rate=0.5)
    rates = [getattr(b.drop_path, 'drop_prob', 0.0) for s in ours.stages for b in s]
    assert rates == pytest.approx([getattr(b.drop_path, 'drop_prob', 0.0) for s in ref.stages for b in s])
    ours.init_weights()
    _perturb(ours)
    ours.train()
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(0)
    out = ours(x)[0]
    out.square().mean().backward()
    assert out.shape == (4, 64) and torch.isfinite(out).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in ours.parameters())
    torch.manual_seed(1)
    with torch.no_grad():
        assert not torch.allclose(out, ours(x)[0])
        ours.eval()
        assert torch.equal(ours(x)[0], ours(x)[0])


def test_convnext_init_weights_like_mmpretrain():
    ours = ConvNeXt('test', use_grn=True)
    ours.init_weights()
    fc1 = torch.cat([b.pointwise_conv1.weight.flatten() for s in ours.stages for b in s])
    assert abs(fc1.std().item() / 0.02 - 1) < 0.1  # truncated at +-2 (absolute), as mmengine's TruncNormal
    assert not ours.stages[0][0].pointwise_conv1.bias.any()
    assert torch.equal(ours.stages[3][0].gamma, torch.full((64,), 1e-6))
    assert not ours.stages[3][0].grn.gamma.any()
    assert torch.equal(ours.norm3.weight, torch.ones(64))


def test_convnext_layer_depth_one_per_block():
    with _meta():
        tiny = ConvNeXt('tiny')
    p = 'backbone.'
    assert tiny.get_layer_depth(p + 'downsample_layers.0.0.weight', p) == (0, 20)
    assert tiny.get_layer_depth(p + 'stages.0.0.gamma', p) == (1, 20)
    assert tiny.get_layer_depth(p + 'downsample_layers.1.1.weight', p) == (4, 20)
    assert tiny.get_layer_depth(p + 'stages.1.0.depthwise_conv.weight', p) == (4, 20)
    assert tiny.get_layer_depth(p + 'stages.3.2.pointwise_conv2.bias', p) == (18, 20)
    assert tiny.get_layer_depth(p + 'norm3.weight', p) == (19, 20)
    assert tiny.get_layer_depth('head.fc.weight', p) == (19, 20)
    assert tiny.no_weight_decay() == set()


# ------------------------------------------------------------------------------------------------ contract


@pytest.mark.parametrize(
    'cfg,embed_dims,shape',
    [
        (dict(type='ResNet', depth=50), 64, (1, 2048, 2, 2)),
        (dict(type='ResNet', depth='test', out_indices=(0, 1, 2, 3)), 16, (1, 256, 2, 2)),
        (dict(type='ConvNeXt', arch='tiny'), 96, (1, 768)),
        (dict(type='ConvNeXt', arch='test', gap_before_final_norm=False), 8, (1, 64, 2, 2)),
    ],
)
def test_builds_from_config_and_honours_the_contract(cfg, embed_dims, shape):
    model = MODELS.build(cfg)
    assert type(model).__name__ == cfg['type']
    model.init_weights()
    assert model.embed_dims == embed_dims
    with torch.no_grad():
        outs = model.eval()(torch.randn(1, 3, 64, 64))
    assert len(outs) == len(model.out_indices) and outs[-1].shape == shape
    assert all(model.get_layer_depth(n)[0] < model.get_layer_depth(n)[1] for n, _ in model.named_parameters())


@pytest.mark.parametrize('model', [ResNet('test'), ConvNeXt('test')], ids=['ResNet', 'ConvNeXt'])
def test_layer_decay_constructor_gives_one_lr_per_block(model):
    from mimlab.registry import OPTIM_WRAPPER_CONSTRUCTORS

    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='LayerDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05)),
            paramwise_cfg=dict(layer_decay_rate=0.5),
        )
    )
    groups = constructor(model).optimizer.param_groups
    lr = {n: g['lr'] for g in groups for n in g['param_names']}
    wd = {n: g['weight_decay'] for g in groups for n in g['param_names']}
    num_blocks = sum(model.stage_blocks if isinstance(model, ResNet) else model.depths)
    # stem and every block its own lr, rate ** (num_layers - depth - 1); ConvNeXt's norm3 at the top (lr 1)
    expected = {0.5 ** (num_blocks + 1 - d) for d in range(num_blocks + 1)} | (
        {1.0} if isinstance(model, ConvNeXt) else set()
    )
    assert set(lr.values()) == expected
    stem = 'conv1.weight' if isinstance(model, ResNet) else 'downsample_layers.0.0.weight'
    assert lr[stem] == 0.5 ** (num_blocks + 1) and wd[stem] == 0.05
    assert all(wd[n] == 0.0 for n, p in model.named_parameters() if p.ndim == 1)
