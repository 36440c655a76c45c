"""The backbone contract (mimlab/models/backbones/base.py), checked over every registered backbone.

A backbone declares its geometry (channels and stride per stage, per output, per mask site), runs its stem and stages
in one ``forward_stages`` loop that calls hooks at its mask sites, writes its init guard once, and names its
weight-decay exemptions and lr-decay depths. A backbone that passes these checks works with SimMIM and A2MIM without
touching them: the last tests show it with a small CNN defined only here.
"""

import time

import pytest
import torch
from torch import nn

from mimlab.models.algorithms.a2mim import A2MIMMaskedBackbone
from mimlab.models.algorithms.mae import MAEViT
from mimlab.models.algorithms.mixmim import MixMIMPretrainTransformer
from mimlab.models.algorithms.simmim import SimMIMMaskedBackbone
from mimlab.models.backbones.base import BaseBackbone
from mimlab.registry import MODELS
from mimlab.structures import DataSample

# ------------------------------------------------------------------------------------ a backbone defined only here


class TinyConvNet(BaseBackbone):
    """Three stages of conv-BN-ReLU after a stride-2 stem: strides 2, 4, 8, 16; nothing mimlab knows about."""

    feature_layout = 'map'

    def __init__(self, widths=(8, 12, 16), out_indices=(2,), init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = 6
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, 2, 1), nn.BatchNorm2d(6), nn.ReLU())
        chans = (6, *widths)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, 2, 1), nn.BatchNorm2d(chans[i + 1]), nn.ReLU())
            for i in range(len(widths))
        )
        self.out_indices = self.resolve_out_indices(out_indices, len(widths))
        self.stage_channels, self.stage_strides = tuple(widths), tuple(2 ** (i + 2) for i in range(len(widths)))
        self.site_channels, self.site_strides = chans[:-1], (2, *self.stage_strides[:-1])  # the input of each stage

    def init_random_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')

    def forward_stages(self, x, hooks=None):
        x, outs = self.stem(x), []
        for i, stage in enumerate(self.stages):
            x = stage(self.at_site(i, x, tuple(x.shape[-2:]), hooks))
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def get_layer_depth(self, param_name, prefix=''):
        name, n = param_name[len(prefix) :], len(self.stages) + 2
        if name.startswith(('stem', 'mask_token', 'mask_gamma')):
            return 0, n
        return (int(name.split('.')[1]) + 1, n) if name.startswith('stages') else (n - 1, n)


@MODELS.register_module(force=True)
class ContractTestSimMIMNet(SimMIMMaskedBackbone, TinyConvNet):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_mask_token(0)


@MODELS.register_module(force=True)
class ContractTestA2MIMNet(A2MIMMaskedBackbone, TinyConvNet):
    def __init__(self, mask_layer=2, replace=False, mask_init=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.add_a2mim_mask_token(mask_layer, replace, mask_init)


# ------------------------------------------------------------------------ the tiny variant of every registered one

# name -> (constructor kwargs of the tiny arch, input side). Every registered BaseBackbone needs a row.
TINY = {
    'VisionTransformer': (dict(arch='test', img_size=32, patch_size=4, out_type='featmap', out_indices=(0, 1)), 32),
    'SwinTransformer': (dict(arch='test', img_size=64, window_size=2, out_indices=(0, 1, 2, 3)), 64),
    'ResNet': (dict(depth='test', out_indices=(0, 1, 2, 3)), 64),
    'ConvNeXt': (dict(arch='test', out_indices=(0, 1, 2, 3), gap_before_final_norm=False), 64),
    'MixMIMTransformer': (dict(arch='test', img_size=64, window_size=(4, 4, 4, 2)), 64),
    'MAEViT': (dict(arch='test', img_size=32, patch_size=4, out_type='featmap'), 32),
    'SimMIMViT': (dict(arch='test', img_size=32, patch_size=4), 32),
    'SimMIMSwinTransformer': (dict(arch='test', img_size=64, window_size=2, out_indices=(2, 3)), 64),
    'MIMResNet': (dict(depth='test', mask_layer=3, mask_init=1e-6, out_indices=(1, 3)), 64),
    'MIMConvNeXt': (dict(arch='test', mask_layer=1, mask_init=1e-6), 64),
    'A2MIMViT': (dict(arch='test', img_size=32, patch_size=4, mask_layer=1, mask_init=1e-6), 32),
    'MixMIMPretrainTransformer': (dict(arch='test', img_size=64, window_size=(4, 4, 4, 2)), 64),
    'ContractTestSimMIMNet': (dict(out_indices=(1, 2)), 64),
    'ContractTestA2MIMNet': (dict(mask_layer=1), 64),
}


def _registered_backbones() -> list[str]:
    from mimlab.apis import register_all_modules

    register_all_modules()
    return sorted(n for n, c in MODELS.module_dict.items() if isinstance(c, type) and issubclass(c, BaseBackbone))


def test_every_registered_backbone_has_a_tiny_variant_here():
    missing = set(_registered_backbones()) - set(TINY)
    assert not missing, f'add the tiny arch of {sorted(missing)} to TINY so that the contract is checked for it'


def _build(name: str, **extra) -> tuple[BaseBackbone, torch.Tensor]:
    kwargs, side = TINY[name]
    torch.manual_seed(0)
    model = MODELS.build(dict(type=name, **kwargs, **extra))
    model.init_weights()
    return model, torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))


def _masked_entry(model: BaseBackbone, x: torch.Tensor):
    """The family's masked entry point, called with a mask on its site grid, or None where it has none."""
    if isinstance(model, MixMIMPretrainTransformer):  # the latent (B, L_4, C) of the mixed batch
        return model.forward_mixed(x)[:1]
    if isinstance(model, MAEViT):  # the latent of the visible patches
        return model.forward_masked(x)[:1]
    if hasattr(model, 'mask_site'):
        s = model.site_strides[model.mask_site]
        mask = (torch.rand(x.shape[0], x.shape[2] // s, x.shape[3] // s, generator=torch.Generator()) > 0.5).long()
        return model.forward_masked(x, mask)
    return None


@pytest.mark.parametrize('name', sorted(TINY))
def test_geometry_matches_the_forward_shapes(name):
    model, x = _build(name)
    model.eval()  # no stochastic depth: the hooked forward below must equal this one
    B, H = x.shape[0], x.shape[2]
    assert model.feature_layout in ('map', 'tokens')
    assert len(model.stage_channels) == len(model.stage_strides) and len(model.site_channels) == len(model.site_strides)
    assert all(0 <= i < len(model.stage_channels) for i in model.out_indices)
    outs = model(x)
    assert isinstance(outs, tuple) and len(outs) == len(model.out_indices)
    for out, c, s in zip(outs, model.out_channels, model.out_strides):
        # a pooled output (MixMIM, a classifier's cls token) is (B, C); a map is (B, C, H/s, W/s)
        assert tuple(out.shape) == ((B, c) if out.dim() == 2 else (B, c, H // s, H // s)), (out.shape, c, s)

    seen = {}

    def record(site):
        def hook(f, hw):
            seen[site] = (tuple(f.shape), tuple(hw))
            return f

        return hook

    sites = range(len(model.site_channels))
    hooked = model.forward_stages(x, {site: record(site) for site in sites})
    assert all(torch.equal(a, b) for a, b in zip(hooked, outs))  # identity hooks change nothing
    assert sorted(seen) == list(sites)
    for site, (shape, hw) in seen.items():
        c, s = model.site_channels[site], model.site_strides[site]
        assert hw == (H // s, H // s), (site, hw, s)
        expected = (B, c, *hw) if model.feature_layout == 'map' else (B, hw[0] * hw[1], c)
        assert shape == expected, (site, shape, expected)


@pytest.mark.parametrize('name', sorted(TINY))
def test_every_parameter_gets_a_gradient_and_the_tiny_arch_is_tiny(name):
    model, x = _build(name)
    model.train()
    start = time.perf_counter()
    loss = sum(o.float().square().mean() for o in model(x))
    masked = _masked_entry(model, x)
    if masked is not None:
        loss = loss + sum(o.float().square().mean() for o in masked)
    loss.backward()
    seconds = time.perf_counter() - start
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_grad = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f'{name}: no (finite) gradient for {no_grad}'
    assert sum(p.numel() for _, p in trainable) < 500_000
    assert seconds < 5.0  # milliseconds on an idle CPU; the bound only catches a non-tiny 'test' arch


@pytest.mark.parametrize('name', sorted(TINY))
def test_weight_decay_and_layer_depth_cover_real_parameters(name):
    model, _ = _build(name)
    names = {n for n, _ in model.named_parameters()}
    assert model.no_weight_decay() <= names
    depths = {model.get_layer_depth(n, prefix='backbone.') for n in (f'backbone.{n}' for n in names)}
    num_layers = {n for _, n in depths}
    assert len(num_layers) == 1 and all(0 <= d < n for d, n in depths)
    head_depth, n = model.get_layer_depth('head.fc.weight', prefix='backbone.')  # not the backbone's: at the top
    assert n in num_layers and head_depth >= max(d for d, _ in depths)


@pytest.mark.parametrize('name', sorted(TINY))
def test_init_guard_draws_once_and_yields_to_a_pretrained_checkpoint(name, tmp_path):
    model, _ = _build(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.init_weights()  # a second call must not re-draw
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    ckpt = {k: v + 1.0 if v.is_floating_point() else v for k, v in before.items()}
    torch.save(ckpt, tmp_path / 'weights.pth')
    torch.manual_seed(3)
    loaded = MODELS.build(
        dict(type=name, **TINY[name][0], init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'weights.pth')))
    )
    loaded.init_weights()
    assert all(torch.equal(ckpt[k], v) for k, v in loaded.state_dict().items())


# ------------------------------------------------------------------ the test-only backbone trains with SimMIM / A2MIM


def _samples(batch: int, grid: int, seed: int) -> list:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batch):
        s = DataSample()
        s.set_mask((torch.rand(grid, grid, generator=g) < 0.6).long())
        out.append(s)
    return out


@pytest.mark.parametrize(
    'algorithm, backbone, head, grid',
    [
        ('SimMIM', dict(type='ContractTestSimMIMNet'), dict(type='SimMIMHead'), 32),  # site 0: stride 2
        (
            'A2MIM',
            dict(type='ContractTestA2MIMNet', mask_layer=2),
            dict(type='A2MIMHead', fft_weight=0.5, fft_focal=True, fft_unmask_replace='mixed', fft_unmask_weight=1e-3),
            8,  # site 2: stride 8
        ),
    ],
)
def test_a_backbone_defined_only_in_the_test_trains_with_simmim_and_a2mim(algorithm, backbone, head, grid):
    torch.manual_seed(0)
    model = MODELS.build(dict(type=algorithm, backbone=backbone, neck=dict(type='SimMIMLinearDecoder'), head=head))
    model.init_weights()
    assert model.neck.decoder[0].in_channels == 16 and model.neck.decoder[1].upscale_factor == 16  # from the contract
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    samples = _samples(4, grid, 3)
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = model.loss(x, samples)['loss']
        optim.zero_grad()
        loss.backward()
        assert model.backbone.mask_token.grad.abs().sum() > 0  # the token reaches the loss
        optim.step()
        losses.append(loss.item())
    assert all(b < a for a, b in zip(losses, losses[1:])), losses  # it learns: the loss falls at every step
    assert 'backbone.mask_token' in model.state_dict()
