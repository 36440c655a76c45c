"""A2MIM: block masks, the mean-RGB fill, the residual mask token, mask sites, the head's losses against hand-written
formulas, training on a tiny model, the openmixup importer, and the recipes."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from mmengine.config import Config

from mimlab.apis import ModelHub
from mimlab.converters import a2mim_from_openmixup, a2mim_to_openmixup
from mimlab.converters.auto import detect_source, import_checkpoint
from mimlab.models.algorithms.a2mim import A2MIMHead, A2MIMViT, MIMConvNeXt, MIMResNet, fill_mean_rgb
from mimlab.models.algorithms.simmim import SimMIMMaskGenerator
from mimlab.models.losses import FocalFrequencyLoss
from mimlab.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS, TRANSFORMS
from mimlab.structures import DataSample

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / 'configs/a2mim').glob('*.py')) + sorted((ROOT / 'configs/demo').glob('a2mim_*.py'))


def _masks(gen: SimMIMMaskGenerator, n: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([gen(dict())['mask'] for _ in range(n)]))  # (n, h, w)


def _samples(mask: torch.Tensor) -> list:
    return [DataSample().set_mask(m) for m in mask]


def _tiny(backbone: dict, head: dict | None = None, **extra):
    model = MODELS.build(
        dict(
            type='A2MIM',
            backbone=backbone,
            neck=dict(type='SimMIMLinearDecoder'),
            head=head or dict(type='A2MIMHead', fft_weight=0.5, fft_focal=True, fft_unmask_replace='mixed'),
            **extra,
        )
    )
    model.init_weights()
    return model


RESNET = dict(type='MIMResNet', depth='test', mask_init=1e-6)
CONVNEXT = dict(type='MIMConvNeXt', arch='test', mask_init=1e-6)
VIT = dict(type='A2MIMViT', arch='test', img_size=64, patch_size=16)


def _sigmoid_focal(e: torch.Tensor) -> torch.Tensor:
    return e * (2.0 / (1.0 + torch.exp(-0.2 * e)) - 1.0)


# ----------------------------------------------------------------------------------------------------------- mask


@pytest.mark.parametrize('model_patch,grid', [(16, 14), (32, 7)])  # ResNet l3 / ViT, ConvNeXt l3
def test_block_mask_masks_30_of_49_blocks_per_sample(model_patch, grid):
    gen = SimMIMMaskGenerator(input_size=224, mask_patch_size=32, model_patch_size=model_patch, mask_ratio=0.6)
    assert gen.mask_count == math.ceil(49 * 0.6) == 30
    np.random.seed(0)
    masks = _masks(gen, 8).numpy()
    scale = 32 // model_patch
    assert masks.shape == (8, grid, grid)
    for m in masks:
        blocks = m[::scale, ::scale]
        assert blocks.sum() == 30
        assert np.array_equal(np.kron(blocks, np.ones((scale, scale), dtype=m.dtype)), m)  # whole 32-px blocks
    assert len({m.tobytes() for m in masks}) == 8  # a fresh permutation per sample


# ---------------------------------------------------------------------------------------------------------- fill


def test_mean_fill_equals_a_hand_computation():
    torch.manual_seed(0)
    img = torch.randn(2, 3, 64, 64)
    mask = torch.tensor([[[1, 0], [0, 1]], [[0, 0], [1, 0]]])  # 32-px blocks on a 64-px image
    out = fill_mean_rgb(img, mask)
    for b in range(2):
        mean = img[b].mean(dim=[1, 2])  # openmixup's tensor branch: per image, per channel, whole image
        for i in range(2):
            for j in range(2):
                block = out[b, :, 32 * i : 32 * (i + 1), 32 * j : 32 * (j + 1)]
                if mask[b, i, j]:
                    assert torch.equal(block, mean.view(3, 1, 1).expand_as(block))
                else:
                    assert torch.equal(block, img[b, :, 32 * i : 32 * (i + 1), 32 * j : 32 * (j + 1)])
    with pytest.raises(ValueError, match='multiple of the mask grid'):
        fill_mean_rgb(img, torch.zeros(2, 3, 3, dtype=torch.long))


# -------------------------------------------------------------------------------------------------------- encode


@pytest.mark.parametrize('replace,mask_init', [(True, 0.0), (False, 0.0), (False, 0.5)])
def test_forward_mask_semantics(replace, mask_init):
    net = MIMResNet(depth='test', replace=replace, mask_init=mask_init)
    net.init_weights()
    assert (net.mask_gamma is not None) == (mask_init > 0 and not replace)
    x, m = torch.randn(2, 128, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    token = net.mask_token  # (1, 128, 1, 1): the layer3 width of the 'test' ResNet
    if replace:
        expected = x * (1 - m) + token * m
    elif mask_init > 0:
        expected = x * (1 - m) + 0.5 * x * m + token * m
    else:
        expected = x + token * m
    assert torch.allclose(net.apply_mask_token(x, m), expected, atol=1e-7)
    assert torch.equal(net.apply_mask_token(x, torch.zeros_like(m)), x)  # visible features untouched


def test_mask_sites_and_shapes():
    site = {}
    # ResNet-50 l3: the token goes into layer4's input, (B, 1024, 14, 14) at 224 px
    r50 = MIMResNet(depth=50, mask_layer=3, mask_init=1e-6).eval()
    assert r50.mask_token.shape == r50.mask_gamma.shape == (1, 1024, 1, 1)
    r50.layer4.register_forward_pre_hook(lambda mod, args: site.__setitem__('r50', args[0].shape))
    with torch.no_grad():
        out = r50.forward_masked(torch.randn(1, 3, 224, 224), torch.zeros(1, 14, 14, dtype=torch.long))
    assert site['r50'] == (1, 1024, 14, 14) and out[-1].shape == (1, 2048, 7, 7)
    with pytest.raises(ValueError, match=r'grid \(7, 7\) does not match the feature map \(14, 14\) at mask site 3'):
        r50.forward_masked(torch.randn(1, 3, 224, 224), torch.zeros(1, 7, 7, dtype=torch.long))
    # ConvNeXt l3: after the stride-32 downsample; ConvNeXt-B's site is 1024 wide
    with torch.device('meta'):
        assert MIMConvNeXt('base', mask_layer=3).mask_token.shape == (1, 1024, 1, 1)
    cnx = MIMConvNeXt('test', mask_layer=3).eval()
    cnx.stages[3][0].register_forward_pre_hook(lambda mod, args: site.__setitem__('cnx', args[0].shape))
    with torch.no_grad():
        out = cnx.forward_masked(torch.randn(1, 3, 224, 224), torch.ones(1, 7, 7, dtype=torch.long))
    assert site['cnx'] == (1, 64, 7, 7) and out[-1].shape == (1, 64, 7, 7)
    # ViT l0: added to the patch embeddings, before cls token and position table
    vit = A2MIMViT('test', img_size=224, patch_size=16).eval()
    mask = torch.zeros(1, 14, 14, dtype=torch.long)
    mask[0, 0, 0] = 1
    with torch.no_grad():
        tokens, _ = vit.patch_embed(torch.zeros(1, 3, 224, 224))  # (1, 196, 32)
        seen = []
        vit.add_position = (lambda orig: lambda t, hw: seen.append(t) or orig(t, hw))(vit.add_position)
        assert vit.forward_masked(torch.zeros(1, 3, 224, 224), mask)[-1].shape == (1, 32, 14, 14)
    assert torch.allclose(seen[0][0, 0], tokens[0, 0] + vit.mask_token[0, 0]) and torch.equal(
        seen[0][0, 1:], tokens[0, 1:]
    )


# ---------------------------------------------------------------------------------------------------------- loss


def _head_inputs():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    mask = torch.tensor([[[1, 0], [0, 1]], [[1, 1], [0, 0]]])  # (2, 2, 2) -> 4-px cells
    m = mask.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1).float()  # (2, 1, 8, 8)
    return pred, target, mask, m


def _ffl_by_hand(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Focal frequency loss in float64 numpy: batch-mean spectra, log weights, global max."""
    fp = np.fft.fft2(pred.double().numpy(), norm='ortho').mean(0)
    ft = np.fft.fft2(target.double().numpy(), norm='ortho').mean(0)
    dist = np.abs(fp - ft) ** 2
    w = np.log(np.sqrt(dist) + 1.0)
    return float((w / w.max() * dist).mean())


def test_spatial_focal_l1_on_masked_pixels():
    pred, target, mask, m = _head_inputs()
    head = A2MIMHead()
    expected = (_sigmoid_focal((pred - target).abs()) * m).sum() / (m.sum() + 1e-5) / 3
    assert torch.allclose(head.loss(pred, target, mask), expected, atol=1e-6)
    half = A2MIMHead(unmask_weight=0.5)
    m_s = m + (1 - m) * 0.5
    expected = (_sigmoid_focal((pred - target).abs()) * m_s).sum() / (m_s.sum() + 1e-5) / 3
    assert torch.allclose(half.loss(pred, target, mask), expected, atol=1e-6)
    l1 = A2MIMHead(loss=dict(type='FocalL1Loss', gamma=0.0))  # ViT: plain L1
    assert torch.allclose(l1.loss(pred, target, mask), ((pred - target).abs() * m).sum() / (m.sum() + 1e-5) / 3)


def test_focal_frequency_loss_by_hand_and_per_map_normalisation():
    pred, target, _, _ = _head_inputs()
    ffl = FocalFrequencyLoss(ave_spectrum=True, log_matrix=True, batch_matrix=True)
    assert math.isclose(ffl(pred, target).item(), _ffl_by_hand(pred, target), rel_tol=1e-5)
    # without batch_matrix each image's channel is normalised by its own maximum
    per_map = FocalFrequencyLoss()
    diff = torch.fft.fft2(pred, norm='ortho') - torch.fft.fft2(target, norm='ortho')
    w = per_map.spectrum_weight(diff)
    assert torch.allclose(w.amax(dim=(-2, -1)), torch.ones(2, 3))
    assert torch.allclose(per_map(pred, target), (w * diff.abs() ** 2).mean(), atol=1e-6)
    assert per_map(target, target).item() == 0.0  # 0/0 weights become 0, not NaN


def test_mixed_replacement_and_fourier_losses():
    pred, target, mask, m = _head_inputs()
    spatial = A2MIMHead().loss(pred, target, mask)
    head = A2MIMHead(fft_weight=0.5, fft_focal=True, fft_unmask_replace='mixed', fft_unmask_weight=1e-3)
    m_f = m + (1 - m) * 1e-3
    composite = pred * m_f + (0.5 * pred + 0.5 * target) * (1 - m_f)
    expected = spatial.item() + 0.5 * _ffl_by_hand(composite, target)
    assert math.isclose(head.loss(pred, target, mask).item(), expected, rel_tol=1e-5)
    # non-focal: the focal L1 on the complex orthonormal spectra, mean over every bin
    head = A2MIMHead(fft_weight=0.1, fft_focal=False, fft_unmask_replace='mixed', fft_unmask_weight=1e-3)
    e = torch.from_numpy(
        np.abs(
            np.fft.fft2(composite.double().numpy(), norm='ortho') - np.fft.fft2(target.double().numpy(), norm='ortho')
        )
    )
    expected = spatial.item() + 0.1 * _sigmoid_focal(e).mean().item()
    assert math.isclose(head.loss(pred, target, mask).item(), expected, rel_tol=1e-5)
    # other replacements
    assert torch.equal(head._replacement(pred, target), 0.5 * pred + 0.5 * target)
    for mode, value in [('target', target), ('prediction', pred), ('mean', target.mean((2, 3), keepdim=True))]:
        head.fft_unmask_replace = mode
        assert torch.equal(head._replacement(pred, target), value.expand_as(target))
    assert A2MIMHead(fft_weight=0.1).fft_unmask_replace == 'target'  # None with the Fourier loss on


@pytest.mark.parametrize('fft_unmask_weight', [0.0, 1e-3])
def test_visible_pixels_get_gradient_only_through_fft_unmask_weight(fft_unmask_weight):
    pred, target, mask, m = _head_inputs()
    pred.requires_grad_(True)
    head = A2MIMHead(fft_weight=0.5, fft_focal=True, fft_unmask_replace='mixed', fft_unmask_weight=fft_unmask_weight)
    head.loss(pred, target, mask).backward()
    visible = pred.grad * (1 - m)
    assert (visible.abs().max() > 0) == (fft_unmask_weight > 0)  # the 'mixed' replacement is detached
    assert (pred.grad * m).abs().max() > 0


# ----------------------------------------------------------------------------------------------------- algorithm


@pytest.mark.parametrize('backbone,model_patch', [(RESNET, 16), (CONVNEXT, 32), (VIT, 16)])
def test_every_parameter_gets_a_gradient_and_sizes_are_inferred(backbone, model_patch):
    if backbone['type'] == 'MIMResNet':  # zero-initialised residual BNs would block the gradient of their branch
        backbone = dict(backbone, zero_init_residual=False)
    model = _tiny(backbone).train()
    stride = {'MIMResNet': 32, 'MIMConvNeXt': 32, 'A2MIMViT': 16}[backbone['type']]
    assert model.neck.decoder[1].upscale_factor == stride
    np.random.seed(0)
    mask = _masks(SimMIMMaskGenerator(64, 32, model_patch, 0.6), 2)
    loss = model.loss(torch.randn(2, 3, 64, 64), _samples(mask))['loss']
    assert torch.isfinite(loss)
    loss.backward()
    assert not [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]


def test_the_backbone_sees_the_filled_image_and_the_head_the_clean_target():
    model = _tiny(RESNET, target_generator=dict(type='LowFreqTargetGenerator', radius=8, img_size=64)).eval()
    x = torch.randn(2, 3, 64, 64)
    np.random.seed(1)
    mask = _masks(SimMIMMaskGenerator(64, 32, 16, 0.6), 2)
    seen = {}
    forward_masked = model.backbone.forward_masked
    model.backbone.forward_masked = lambda img, m: seen.setdefault('img', img) is not None and forward_masked(img, m)
    with torch.no_grad():
        loss = model.loss(x, _samples(mask))['loss']
        assert torch.equal(seen['img'], fill_mean_rgb(x, mask))
        pred = model.neck(forward_masked(fill_mean_rgb(x, mask), mask)[-1])
        assert torch.allclose(loss, model.head.loss(pred, model.make_target(x), mask))
        assert not torch.allclose(loss, model.head.loss(pred, x, mask))
    with pytest.raises(ValueError, match='SimMIMMaskGenerator'):
        model.loss(x, [DataSample(), DataSample()])


def test_loss_decreases_on_a_tiny_model():
    torch.manual_seed(0)
    model = _tiny(RESNET).train()
    x = torch.randn(4, 3, 64, 64)
    np.random.seed(0)
    samples = _samples(_masks(SimMIMMaskGenerator(64, 32, 16, 0.6), 4))
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = model.loss(x, samples)['loss']
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0] and losses[-1] <= min(losses[:4]), losses


# ------------------------------------------------------------------------------------------------------ importer


@pytest.mark.parametrize('backbone', [RESNET, CONVNEXT, dict(VIT, layer_scale_init_value=0.1)])
def test_importer_round_trip(backbone):
    model = _tiny(backbone)
    ours = model.state_dict()
    theirs = {'state_dict': a2mim_to_openmixup(ours), 'meta': {}}
    assert 'neck.decoder_pred.0.weight' in theirs['state_dict'] and 'neck.decoder.0.weight' not in theirs['state_dict']
    assert detect_source(theirs) == 'openmixup-a2mim'
    source, back = import_checkpoint(theirs)
    assert source == 'openmixup-a2mim' and back.keys() == ours.keys()
    assert all(torch.equal(back[k], ours[k]) for k in ours)
    model.load_state_dict(back, strict=True)


def test_importer_on_an_openmixup_vit_with_relative_position_bias():
    model = _tiny(dict(VIT, layer_scale_init_value=0.1))  # A2MIMViT: a BEiT relative position bias per block
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('relative_position_bias_table'):
                p.normal_()
    ours = model.state_dict()
    # openmixup's layout, written out by hand: use_window ViT blocks have q_bias / v_bias and a bias table
    theirs = {
        'neck.decoder_pred.0.weight': ours['neck.decoder.0.weight'],
        'neck.decoder_pred.0.bias': ours['neck.decoder.0.bias'],
    }
    for key, value in ours.items():
        if not key.startswith('backbone.'):
            continue
        name = key.replace('.attn.gamma1.weight', '.gamma_1').replace('.ffn.gamma2.weight', '.gamma_2')
        if name.endswith('attn.qkv.bias'):
            q, _, v = value.chunk(3)
            theirs[name.replace('qkv.bias', 'q_bias')] = q
            theirs[name.replace('qkv.bias', 'v_bias')] = v
            continue
        theirs[name] = value
    assert theirs['backbone.layers.0.attn.relative_position_bias_table'].shape == (7 * 7 + 3, 2)  # 4x4 patch grid
    back = a2mim_from_openmixup(theirs)
    for i in range(2):
        qkv = back[f'backbone.layers.{i}.attn.qkv.bias']
        assert torch.equal(qkv[32:64], torch.zeros(32))  # k has no bias in openmixup
        ours[f'backbone.layers.{i}.attn.qkv.bias'][32:64] = 0
    model.load_state_dict(back, strict=True)
    assert all(torch.equal(back[k], ours[k]) for k in ours)
    # without the bias: dropped on request, for a ViT built with use_rel_pos_bias=False
    plain = _tiny(dict(VIT, layer_scale_init_value=0.1, use_rel_pos_bias=False))
    plain.load_state_dict(a2mim_from_openmixup(theirs, drop_relative_position_bias=True), strict=True)
    with pytest.raises(KeyError, match='head.extra'):
        a2mim_from_openmixup({**theirs, 'head.extra': torch.zeros(1)})


def test_relative_position_bias_equals_the_beit_formula():
    """The bias mimlab adds through SDPA equals BEiT's explicit softmax(q k^T * scale + B[index]) v."""
    from mimlab.models.layers.transformer import MultiheadAttention, beit_relative_position_index

    torch.manual_seed(0)
    attn = MultiheadAttention(16, 2, rel_pos_grid=(3, 4)).eval()
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
    index = beit_relative_position_index((3, 4))
    assert index.shape == (13, 13) and index[0, 0] == 5 * 7 + 2 and index[0, 1] == 35 and index[1, 0] == 36
    # query (0, 0) vs key (2, 3): offset (-2, -3) -> row (0) * 7 + (0) = 0; the reverse pair -> (4) * 7 + 6 = 34
    assert index[1, 12] == 0 and index[12, 1] == 34
    x = torch.randn(2, 13, 16)
    q, k, v = attn.qkv(x).reshape(2, 13, 3, 2, 8).permute(2, 0, 3, 1, 4)
    bias = attn.relative_position_bias_table[index.view(-1)].view(13, 13, 2).permute(2, 0, 1)
    expected = ((q @ k.transpose(-2, -1)) * 8**-0.5 + bias).softmax(-1) @ v
    expected = attn.proj(expected.transpose(1, 2).reshape(2, 13, 16))
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='masked subset'):
        attn(x[:, :7])


# ------------------------------------------------------------------------------------------------------- recipes

# (fft_weight, fft_focal, fft_unmask_weight, mask_init, model_patch_size, mask_gamma lr_mult) per reference §3-4
EXPECTED = {
    'resnet50-l3_8xb256-coslr-300e': (0.5, True, 1e-3, 1e-6, 16, None),
    'resnet50-l3_8xb256-coslr-100e': (0.5, True, 1e-3, 1e-6, 16, 0.1),
    'resnet101-l3_8xb256-coslr-300e': (0.1, False, 1e-3, 1e-6, 16, None),
    'resnet152-l3_8xb256-coslr-300e': (0.0, False, 1e-3, 1e-6, 16, None),
    'resnet200-l3_8xb256-coslr-300e': (0.0, False, 1e-3, 1e-6, 16, None),
    'convnext-tiny-l3_8xb256-amp-coslr-300e': (0.0, False, 0.0, 1e-6, 32, 0.1),
    'convnext-small-l3_8xb256-amp-coslr-300e': (0.0, False, 0.0, 1e-6, 32, 0.1),
    'convnext-base-l3_8xb256-amp-coslr-300e': (0.0, False, 0.0, 1e-6, 32, 0.1),
    'vit-small-p16-l0_8xb256-step-800e': (0.1, True, 0.0, 0.0, 16, None),
    'vit-base-p16-l0_8xb128-accu2-step-800e': (0.1, True, 0.0, 0.0, 16, None),
    'vit-large-p16-l0_8xb128-accu2-step-800e': (0.1, True, 0.0, 0.0, 16, None),
}
TINY_BACKBONE = {
    'MIMResNet': dict(depth='test'),
    'MIMConvNeXt': dict(arch='test'),
    'A2MIMViT': dict(arch='test', img_size=64),
}


@pytest.mark.parametrize('path', RECIPES, ids=lambda p: p.name)
def test_recipe_builds_and_steps(path):
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mimlab' and cfg.model.type == 'A2MIM'
    pipeline = cfg.train_dataloader.dataset.pipeline
    gen_cfg = next(t for t in pipeline if t['type'] == 'SimMIMMaskGenerator')
    if 'demo' not in path.parts:
        key = path.stem[len('a2mim_') : -len('_in1k')]
        fft_weight, fft_focal, fft_unmask_weight, mask_init, model_patch, gamma_lr = EXPECTED[key]
        head, bb = cfg.model.head, cfg.model.backbone
        assert (head.fft_weight, head.fft_focal, head.fft_unmask_weight) == (fft_weight, fft_focal, fft_unmask_weight)
        assert bb.get('mask_init', 0.0) == mask_init and gen_cfg.model_patch_size == model_patch
        assert (gen_cfg.input_size, gen_cfg.mask_patch_size, gen_cfg.mask_ratio) == (224, 32, 0.6)
        paramwise = cfg.optim_wrapper.get('paramwise_cfg') or {}
        assert paramwise.get('lr_mult', {}).get('mask_gamma') == gamma_lr
        assert ('mask_gamma' in paramwise.get('no_weight_decay', [])) == (gamma_lr is not None)
        batch = cfg.train_dataloader.batch_size * 8 * cfg.optim_wrapper.get('accumulative_counts', 1)
        assert batch == 2048
        lr = cfg.optim_wrapper.optimizer.lr
        assert math.isclose(lr, 4e-4 if 'vit' in key else 1.2e-3)
    for t in pipeline:
        TRANSFORMS.build(t)

    model_cfg = cfg.model.to_dict()
    model_cfg['backbone'].update(TINY_BACKBONE[model_cfg['backbone']['type']])
    model_cfg['data_preprocessor'] = cfg.data_preprocessor
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    model.train()
    optim_cfg = cfg.optim_wrapper.to_dict()
    optim_cfg.update(type='OptimWrapper')
    optim_cfg.pop('loss_scale', None)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type=optim_cfg.pop('constructor', 'DefaultOptimWrapperConstructor'),
            optim_wrapper_cfg=optim_cfg,
            paramwise_cfg=optim_cfg.pop('paramwise_cfg', None),
        )
    )
    optim_wrapper = constructor(model)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {names[id(p)]: g for g in optim_wrapper.optimizer.param_groups for p in g['params']}
    base_lr = optim_cfg['optimizer']['lr']
    assert groups['backbone.mask_token']['weight_decay'] == 0
    assert math.isclose(
        groups['backbone.mask_token']['lr'], base_lr * (1.0 if model_cfg['backbone']['type'] == 'A2MIMViT' else 0.1)
    )
    decayed_1d = tuple('.' + k for k in (cfg.optim_wrapper.get('paramwise_cfg') or {}).get('weight_decay', []))
    for name, p in model.named_parameters():
        if (p.ndim == 1 or 'relative_position_bias_table' in name) and name in groups:
            # norms, biases, LayerScale, ViT bias tables; openmixup's ResNet recipes decay the downsample BN weights
            assert groups[name]['weight_decay'] == (0.05 if name.endswith(decayed_1d) else 0), name

    np.random.seed(0)
    gen = SimMIMMaskGenerator(64, gen_cfg.mask_patch_size, gen_cfg.model_patch_size, gen_cfg.mask_ratio)
    data = model.data_preprocessor(
        dict(inputs=torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8), data_samples=_samples(_masks(gen, 2))),
        training=True,
    )
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(loss)
    loss.backward()
    optim_wrapper.step()


def test_metafile_lists_the_released_checkpoints(tmp_path):
    # an index of its own (the repository's model-index.yml is not edited here)
    (tmp_path / 'configs').symlink_to(ROOT / 'configs')
    (tmp_path / 'model-index.yml').write_text(yaml.safe_dump(dict(Import=['configs/a2mim/metafile.yml'])))
    hub = ModelHub(tmp_path / 'model-index.yml')
    # 10 A2MIM pretraining checkpoints, 9 SimMIM-baseline ones, 13 fine-tuned classifiers (tests/test_a2mim_finetune.py)
    assert len(hub.models) == 32
    pretrain = {n: info for n, info in hub.models.items() if n.startswith('a2mim_')}
    assert len(pretrain) == 10
    for info in pretrain.values():
        assert Path(info.config).resolve().parent == ROOT / 'configs/a2mim' and Path(info.config).is_file()
        assert info.collection == 'A2MIM' and not info.results
    for info in hub.models.values():
        assert info.weights.startswith('https://github.com/Westlake-AI/')
    top1 = {n: hub.get(n).metadata['Fine-tune Top 1 Accuracy'] for n in pretrain}
    assert top1['a2mim_resnet50-l3_8xb256-coslr-300e_in1k'] == 80.4
    assert top1['a2mim_resnet50-l3_8xb256-coslr-100e_in1k'] == 78.8
    assert top1['a2mim_vit-base-p16-l0_8xb128-accu2-step-800e_in1k'] == 84.3
    assert top1['a2mim_convnext-base-l3_8xb256-amp-coslr-300e_in1k'] == 84.1


@pytest.mark.parametrize(
    'net,grid',
    [
        (MIMResNet(depth='test', mask_init=0.5), 4),
        (MIMConvNeXt('test', mask_init=0.5), 2),
        (MIMConvNeXt('test', gap_before_final_norm=True), 2),
        (A2MIMViT('test', img_size=64, mask_layer=1), 4),
    ],
)
def test_nothing_masked_is_the_plain_backbone(net, grid):
    net.init_weights()
    net.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        plain, masked = net(x)[-1], net.forward_masked(x, torch.zeros(2, grid, grid, dtype=torch.long))[-1]
    assert torch.allclose(masked, plain, atol=1e-6)
