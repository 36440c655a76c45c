"""ResNet and ConvNeXt checkpoints into timm and back: strict loads, identical features, exact round trips."""

import pytest
import timm
import torch
from torch import nn

from mimlab.converters import (
    convnext_from_timm,
    convnext_to_timm,
    resnet_from_timm,
    resnet_to_timm,
    split_checkpoint,
    timm_convnext_model,
    timm_resnet_model,
)
from mimlab.models.backbones import ConvNeXt, ResNet


def _perturb(model: nn.Module) -> nn.Module:
    """Move BN statistics / affine and LayerScale away from their init, where zero-init residuals and 1e-6 LayerScale
    would make most blocks the identity and the comparison trivial."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    for name, p in model.named_parameters():
        if name.endswith(('gamma', 'grn.beta')):
            p.data.normal_(0, 0.5)
    return model


def _timm_loaded(builder, state: dict) -> nn.Module:
    """The matching timm model, built on the meta device (no init: seconds saved) and loaded strictly."""
    with torch.device('meta'):
        model = builder(state)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _head(num_classes: int, width: int) -> dict:
    return {'head.fc.weight': torch.randn(num_classes, width) * 0.02, 'head.fc.bias': torch.randn(num_classes)}


@pytest.fixture(scope='module')
def resnet50():
    torch.manual_seed(0)
    model = ResNet(50)
    model.init_weights()
    return _perturb(model).eval()


@pytest.fixture(scope='module')
def convnext_base():
    torch.manual_seed(0)
    model = ConvNeXt('base')
    model.init_weights()
    return _perturb(model).eval()


def test_resnet50_loads_strictly_into_timm_with_equal_features(resnet50):
    head = _head(7, 2048)
    ref = _timm_loaded(timm_resnet_model, resnet_to_timm(resnet50.state_dict(), head))
    assert ref.pretrained_cfg['architecture'] == 'resnet50' and ref.num_classes == 7
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = resnet50(x)[0]
        assert feats.shape == (2, 2048, 2, 2) and feats.abs().mean() > 0.1
        assert torch.allclose(feats, ref.forward_features(x), atol=1e-4)
        logits = feats.mean(dim=(2, 3)) @ head['head.fc.weight'].T + head['head.fc.bias']
        assert torch.allclose(logits, ref(x), atol=1e-4)


def test_convnext_base_loads_strictly_into_timm_with_equal_features(convnext_base):
    head = _head(5, 1024)
    ref = _timm_loaded(timm_convnext_model, convnext_to_timm(convnext_base.state_dict(), head))
    assert ref.pretrained_cfg['architecture'] == 'convnext_base' and ref.num_classes == 5
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pooled = convnext_base(x)[0]  # pooled, then norm3 (gap_before_final_norm)
        assert torch.allclose(pooled, ref.forward_head(ref.forward_features(x), pre_logits=True), atol=1e-4)
        logits = pooled @ head['head.fc.weight'].T + head['head.fc.bias']
        assert torch.allclose(logits, ref(x), atol=1e-4)


@pytest.mark.parametrize(
    'kwargs',
    [dict(use_grn=True, layer_scale_init_value=0.0), dict(use_grn=True, linear_pw_conv=False)],
)
def test_convnext_v2_and_conv_mlp_variants_match_timm(kwargs):
    ours = _perturb(ConvNeXt('test', **kwargs)).eval()
    ref = _timm_loaded(timm_convnext_model, convnext_to_timm(ours.state_dict()))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x)[0], ref.forward_head(ref.forward_features(x), pre_logits=True), atol=1e-5)


@pytest.mark.parametrize('name,arch', [('resnet50', 50), ('convnext_base', 'base')])
def test_timm_to_mimlab_to_timm_is_identity(name, arch):
    with torch.device('meta'):
        shapes = timm.create_model(name, pretrained=False, num_classes=10).state_dict()
    torch.manual_seed(0)  # a distinct random value in every tensor (timm's own init of ConvNeXt-B takes seconds)
    state = {
        k: torch.randn(v.shape) if v.is_floating_point() else torch.ones(v.shape, dtype=v.dtype)
        for k, v in shapes.items()
    }
    from_timm, to_timm, backbone_cls = (
        (resnet_from_timm, resnet_to_timm, ResNet) if arch == 50 else (convnext_from_timm, convnext_to_timm, ConvNeXt)
    )
    mimlab_state = from_timm(state)
    assert {k.split('.')[0] for k in mimlab_state} == {'backbone', 'head'}
    assert {k for k in mimlab_state if k.startswith('head.')} == {'head.fc.weight', 'head.fc.bias'}
    backbone, head = split_checkpoint(mimlab_state)
    back = to_timm(backbone, head)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)
    # and the mimlab side loads strictly into mimlab's backbone
    with torch.device('meta'):
        model = backbone_cls(arch)
    model.load_state_dict(backbone, strict=True, assign=True)


@pytest.mark.parametrize('depth', [18, 34, 50, 101, 152, 200])
def test_timm_resnet_model_picks_the_depth_from_the_keys(depth):
    with torch.device('meta'):
        ours = ResNet(depth)
        ref = timm_resnet_model(resnet_to_timm(ours.state_dict()))
    assert ref.pretrained_cfg['architecture'] == f'resnet{depth}' and ref.num_classes == 0
    assert {k: v.shape for k, v in ref.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base', 'large', 'xlarge'])
def test_timm_convnext_model_picks_the_arch_from_the_keys(arch):
    with torch.device('meta'):
        ours = ConvNeXt(arch)
        state = convnext_to_timm(ours.state_dict())
        ref = timm_convnext_model(state)
    assert ref.pretrained_cfg['architecture'] == f'convnext_{arch}'
    assert {k: v.shape for k, v in ref.state_dict().items()} == {k: v.shape for k, v in state.items()}


def test_a_2x2_stem_has_no_timm_counterpart():
    with pytest.raises(ValueError, match='2x2 stem'):
        timm_convnext_model(convnext_to_timm(ConvNeXt('test', stem_patch_size=2).state_dict()))


def test_unknown_keys_are_listed():
    w = torch.zeros(1)
    with pytest.raises(KeyError, match=r"\['layer1.0.foo.weight', 'mask_token'\]"):
        resnet_to_timm({'conv1.weight': w, 'mask_token': w, 'layer1.0.foo.weight': w})
    with pytest.raises(KeyError, match='stem.0.conv.weight'):  # deep stem: another timm layout
        resnet_to_timm({'stem.0.conv.weight': w})
    with pytest.raises(KeyError, match='head.layers.head.weight'):
        resnet_to_timm({'conv1.weight': w}, {'head.layers.head.weight': w})
    with pytest.raises(KeyError, match='global_pool'):
        resnet_from_timm({'fc.weight': w, 'global_pool.weight': w})
    with pytest.raises(KeyError, match=r"\['mask_token', 'norm2.weight'\]"):  # only the last stage's norm maps
        convnext_to_timm({'norm3.weight': w, 'norm2.weight': w, 'mask_token': w})
    with pytest.raises(KeyError, match='norm_pre.weight'):
        convnext_from_timm({'stem.0.weight': w, 'norm_pre.weight': w})


@pytest.mark.parametrize(
    'build,family',
    [(lambda: ResNet(depth=18), 'resnet'), (lambda: ConvNeXt(arch='test', out_indices=(3,)), 'convnext')],
    ids=['resnet18', 'convnext-test'],
)
def test_family_detection_and_check_through_the_generic_converter(build, family):
    """What ``mmcls2timm.py --check`` runs: the family from the keys, timm's model from the weights, equal features."""
    from mimlab.converters.auto import check_against_timm, from_timm, to_timm

    model = _perturb(build())
    full = {'backbone.' + k: v for k, v in model.state_dict().items()}
    found, timm_state, backbone = to_timm({'state_dict': full})
    assert found == family
    assert check_against_timm(family, backbone, timm_state) < 1e-4
    found, back = from_timm({'model': timm_state})
    assert found == family and back.keys() == full.keys()
    assert all(torch.equal(back[k], full[k]) for k in full)
