"""A2MIM's fine-tuning recipes (configs/a2mim/benchmarks) carry the values of openmixup's config files: the lr
schedule that tools/visualization/vis_scheduler.py shows equals mmcv's, step for step, and the published optimiser,
batch, augmentation, EMA and resolution settings are the ones in the files."""

import math
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from mimlab.analysis.param_schedule import param_schedule
from mimlab.registry import TRANSFORMS

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / 'configs/a2mim/benchmarks'
IMAGENET_TRAIN = 1281167


def _cfg(name: str) -> Config:
    return Config.fromfile(str(BENCH / name))


def _ngpus(name: str) -> int:
    return int(name.split('_')[1].split('xb')[0])


def _annealing_cos(start: float, end: float, factor: float) -> float:
    """mmcv's ``annealing_cos``."""
    return end + 0.5 * (start - end) * (math.cos(math.pi * factor) + 1)


def mmcv_cosine_with_warmup(
    base_lr, min_lr, max_epochs, iters_per_epoch, warmup_epochs, warmup_ratio, by_epoch, ramp_end_offset=0
):
    """Per-iteration lr of mmcv's ``CosineAnnealingLrUpdaterHook(min_lr, by_epoch, warmup='linear',
    warmup_by_epoch=True)``: the cosine over the whole run (per epoch or per iteration) times the warmup factor
    ``1 - (1 - t / T_w) * (1 - warmup_ratio)`` during the first ``T_w`` iterations. ``ramp_end_offset=-1``: the ramp
    reaches 1 at iteration ``T_w - 1`` instead (mmengine's ``LinearLR``)."""
    total, warmup = max_epochs * iters_per_epoch, warmup_epochs * iters_per_epoch
    ramp = warmup + ramp_end_offset
    out = []
    for t in range(total):
        progress = t // iters_per_epoch / max_epochs if by_epoch else t / total
        lr = _annealing_cos(base_lr, min_lr, progress)
        if t < ramp:
            lr *= 1 - (1 - t / ramp) * (1 - warmup_ratio)
        out.append(lr)
    return np.array(out)


def stepfix_cosine(base_lr, min_lr, max_epochs, iters_per_epoch, warmup_epochs):
    """openmixup's ``StepFixCosineAnnealing(by_epoch=False)``: after the warmup, the cosine over the remaining
    iterations; during it, that cosine continued backwards times ``t / T_w``."""
    total, warmup = max_epochs * iters_per_epoch, warmup_epochs * iters_per_epoch
    out = []
    for t in range(total):
        lr = _annealing_cos(base_lr, min_lr, (t - warmup) / (total - warmup))
        out.append(lr * t / warmup if t < warmup else lr)
    return np.array(out)


# name, openmixup's lr, min_lr, epochs, warmup epochs, warmup ratio, cosine stepped per epoch
MMCV_COSINE = [
    ('resnet50_8xb256-rsb-a2-amp-coslr-300e_in1k.py', 5e-3, 1e-6, 300, 5, 1e-5, True),
    ('resnet50_4xb512-rsb-a3-amp-coslr-100e_in1k-160px.py', 8e-3, 1e-6, 100, 5, 1e-5, True),
    ('convnext-small_8xb256-accu2-amp-coslr-300e_in1k.py', 4e-3, 1e-6, 300, 5, 1e-5, False),
]


@pytest.mark.parametrize('name,lr,min_lr,epochs,warmup,ratio,by_epoch', MMCV_COSINE, ids=[m[0] for m in MMCV_COSINE])
def test_lr_schedule_equals_mmcvs_cosine_with_warmup(name, lr, min_lr, epochs, warmup, ratio, by_epoch):
    schedule = param_schedule(_cfg(name), dataset_size=IMAGENET_TRAIN, ngpus=_ngpus(name))
    curve = schedule.main
    assert schedule.max_epochs == epochs
    n = schedule.iters_per_epoch
    expected = mmcv_cosine_with_warmup(lr, min_lr, epochs, n, warmup, ratio, by_epoch)
    assert curve.shape == expected.shape
    np.testing.assert_allclose(curve[warmup * n :], expected[warmup * n :], rtol=1e-6)
    # during the warmup: the same ramp, except that mmengine's LinearLR reaches the peak one iteration earlier
    # (relative difference at most 1 / (T_w - 1) = 3.2e-4 for 5 x 625 iterations)
    np.testing.assert_allclose(
        curve, mmcv_cosine_with_warmup(lr, min_lr, epochs, n, warmup, ratio, by_epoch, -1), rtol=1e-6, atol=1e-12
    )
    np.testing.assert_allclose(curve, expected, rtol=1.01 / (warmup * n - 1))
    # the published lr is the cosine's start (the peak is lower: the cosine has decayed by the end of the warmup)
    assert schedule.curves[next(iter(schedule.curves))][0] == pytest.approx(lr * ratio)


@pytest.mark.parametrize(
    'name,epochs',
    [
        ('vit-base-p16_4xb128-accu2-amp-coslr-100e_in1k.py', 100),
        ('vit-large-p16_8xb64-accu2-amp-coslr-150e_in1k.py', 150),
    ],
)
def test_vit_lr_schedule_after_warmup_equals_openmixups_stepfix_cosine(name, epochs):
    cfg = _cfg(name)
    cfg.optim_wrapper.pop('paramwise_cfg')  # the base lr's curve needs no ViT-L built for its layer-decay groups
    schedule = param_schedule(cfg, dataset_size=IMAGENET_TRAIN, ngpus=_ngpus(name))
    n, warmup = schedule.iters_per_epoch, 20 * schedule.iters_per_epoch
    curve = schedule.main
    expected = stepfix_cosine(1e-2, 1e-6, epochs, n, 20)
    np.testing.assert_allclose(curve[warmup:], expected[warmup:], rtol=1e-6)
    # the warmup: linear from ~0 to the peak 2.5e-3 x 1024 / 256 over 20 epochs (openmixup's ramp is bent by the
    # backwards cosine: at its middle 0.48 x lr instead of 0.5 x lr; docs/a2mim.md)
    assert curve[0] == pytest.approx(1e-2 * 1e-6)
    assert curve[warmup // 2] == pytest.approx(0.5e-2, rel=1e-3)
    assert expected[warmup // 2] == pytest.approx(0.5e-2 * _annealing_cos(1, 0, -0.5 * 20 / (epochs - 20)), rel=1e-3)


# name, GPUs x images x accumulation, optimiser, lr, weight decay, epochs, EMA decay (None: no EMA), drop path,
# mixup, cutmix, RandAugment, train px, test resize, sampler
PUBLISHED = [
    ('resnet50_4xb512-rsb-a3-amp-coslr-100e_in1k-160px.py', 2048, 'Lamb', 8e-3, 0.02, 100, None, 0.0, 0.1, 1.0,
     'rand-m6-mstd0.5-inc1', 160, 236, 'ExactResumeSampler'),
    ('resnet50_8xb256-rsb-a2-amp-coslr-300e_in1k.py', 2048, 'Lamb', 5e-3, 0.02, 300, 0.9999, 0.05, 0.1, 1.0,
     'rand-m7-mstd0.5-inc1', 224, 236, 'RepeatAugSampler'),
    ('resnet101_8xb256-rsb-a2-amp-coslr-300e_in1k.py', 2048, 'Lamb', 5e-3, 0.02, 300, 0.9999, 0.1, 0.1, 1.0,
     'rand-m7-mstd0.5-inc1', 224, 236, 'RepeatAugSampler'),
    ('resnet152_8xb256-rsb-a2-amp-coslr-300e_in1k.py', 2048, 'Lamb', 5e-3, 0.02, 300, 0.9999, 0.15, 0.1, 1.0,
     'rand-m7-mstd0.5-inc1', 224, 236, 'RepeatAugSampler'),
    ('convnext-base_8xb256-accu2-amp-coslr-300e_in1k.py', 4096, 'AdamW', 4e-3, 0.05, 300, 0.9999, 0.5, 0.8, 1.0,
     'rand-m9-mstd0.5-inc1', 224, 256, 'ExactResumeSampler'),
    ('vit-base-p16_4xb128-accu2-amp-coslr-100e_in1k.py', 1024, 'AdamW', 1e-2, 0.05, 100, 0.99996, 0.1, 0.8, 1.0,
     'rand-m9-mstd0.5-inc1', 224, 256, 'ExactResumeSampler'),
    ('vit-small-p16_8xb128-amp-coslr-200e_in1k.py', 1024, 'AdamW', 1e-2, 0.05, 200, None, 0.1, 0.8, 1.0,
     'rand-m9-mstd0.5-inc1', 224, 256, 'ExactResumeSampler'),
    ('vit-large-p16_8xb64-accu2-amp-coslr-150e_in1k.py', 1024, 'AdamW', 1e-2, 0.05, 150, None, 0.1, 0.8, 1.0,
     'rand-m9-mstd0.5-inc1', 224, 256, 'RepeatAugSampler'),
]  # fmt: skip


@pytest.mark.parametrize('row', PUBLISHED, ids=[r[0] for r in PUBLISHED])
def test_recipes_carry_the_published_settings(row):
    name, batch, opt, lr, wd, epochs, ema, drop_path, mixup, cutmix, randaug, train_px, test_resize, sampler = row
    cfg = _cfg(name)
    accumulation = cfg.optim_wrapper.get('accumulative_counts', 1)
    assert _ngpus(name) * cfg.train_dataloader.batch_size * accumulation == batch
    assert cfg.auto_scale_lr.base_batch_size == batch
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == (opt, pytest.approx(lr), wd)
    assert cfg.train_cfg.max_epochs == epochs
    emas = [h for h in cfg.get('custom_hooks', []) if h.type == 'EMAHook']
    assert [1 - h.momentum for h in emas] == ([pytest.approx(ema)] if ema else [])
    for h in emas:
        assert h.interval if accumulation > 1 else h.get('interval', 1) == accumulation
    assert cfg.model.backbone.drop_path_rate == drop_path
    augments = cfg.model.train_cfg.augments
    assert (augments.mixup_alpha, augments.cutmix_alpha) == (mixup, cutmix)
    pipeline = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    assert pipeline['TimmRandAugment']['config_str'] == randaug
    assert pipeline['RandomResizedCrop']['scale'] == train_px
    test = {t['type']: t for t in cfg.val_dataloader.dataset.pipeline}
    assert (test['ResizeEdge']['scale'], test['CenterCrop']['crop_size']) == (test_resize, 224)
    assert cfg.train_dataloader.sampler.type == sampler
    assert cfg.optim_wrapper.get('dtype') == 'float16'  # openmixup: fp16 with dynamic loss scaling
    if name.startswith('resnet'):
        assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
        assert cfg.model.head.loss == dict(type='BinaryCrossEntropy', smoothing=0.0, sum_classes=True)
    else:
        assert cfg.model.train_cfg.augments.label_smoothing == 0.1
        assert cfg.model.train_cfg.random_erasing.probability == 0.25
    if name.startswith('vit'):
        assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.65
        assert cfg.optim_wrapper.clip_grad.max_norm == 5.0
        assert cfg.model.backbone.use_rel_pos_bias and cfg.model.backbone.layer_scale_init_value == 0.1


# openmixup's RandAugment policy list of the RSB recipes (mmcls names) and timm's increasing ops, one for one
OPENMIXUP_RSB_POLICIES = {
    'AutoContrast': 'AutoContrast',
    'Equalize': 'Equalize',
    'Invert': 'Invert',
    'Rotate': 'Rotate',
    'Posterize': 'PosterizeIncreasing',
    'Solarize': 'SolarizeIncreasing',
    'SolarizeAdd': 'SolarizeAdd',
    'ColorTransform': 'ColorIncreasing',
    'Contrast': 'ContrastIncreasing',
    'Brightness': 'BrightnessIncreasing',
    'Sharpness': 'SharpnessIncreasing',
    'Shear/horizontal': 'ShearX',
    'Shear/vertical': 'ShearY',
    'Translate/horizontal': 'TranslateXRel',
    'Translate/vertical': 'TranslateYRel',
}


@pytest.mark.parametrize(
    'name,magnitude',
    [('resnet50_4xb512-rsb-a3-amp-coslr-100e_in1k-160px.py', 6), ('resnet50_8xb256-rsb-a2-amp-coslr-300e_in1k.py', 7)],
)
def test_rsb_randaugment_is_openmixups_policy_at_its_magnitude(name, magnitude):
    cfg = _cfg(name)
    cfg_t = next(t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'TimmRandAugment')
    op = TRANSFORMS.build(cfg_t).op
    assert op.num_layers == 2  # openmixup's num_policies=2
    assert sorted(o.name for o in op.ops) == sorted(OPENMIXUP_RSB_POLICIES.values())
    for o in op.ops:
        assert o.magnitude == magnitude and o.magnitude_std == 0.5  # magnitude_level, magnitude_std
        assert o.prob == 0.5  # each chosen op applied with probability 0.5, as mmcls's policies


# ------------------------------------------------------------------------------------- SimMIM baselines (pretraining)

# name, openmixup's mask layer, replace, model patch (stride of the mask site), lr at 2048 images, fp16
SIMMIM_BASELINES = [
    ('simmim_resnet50-l0_8xb256-amp-coslr-300e_in1k.py', 0, True, 4, 8e-4, True),
    ('simmim_resnet200-l0_8xb256-amp-coslr-300e_in1k.py', 0, True, 4, 8e-4, True),
    ('simmim_convnext-small-l0_8xb256-amp-coslr-300e_in1k.py', 0, False, 4, 8e-4, True),
    ('simmim_vit-base-p16-l0_8xb128-accu2-step-800e_in1k.py', 0, True, 16, 4e-4, False),
    ('simmim_vit-small-p16-l0_8xb256-amp-step-800e_in1k.py', 0, True, 16, 4e-4, True),
]


@pytest.mark.parametrize('row', SIMMIM_BASELINES, ids=[r[0] for r in SIMMIM_BASELINES])
def test_simmim_baselines_carry_openmixups_settings(row):
    from mimlab.registry import MODELS

    name, mask_layer, replace, patch, lr, fp16 = row
    cfg = Config.fromfile(str(ROOT / 'configs/simmim' / name))
    model = MODELS.build(cfg.model)
    assert model.backbone.mask_site == mask_layer
    assert getattr(model.backbone, 'replace', True) is replace  # SimMIMViT always replaces
    assert getattr(model.backbone, 'mask_gamma', None) is None
    assert model.head.patch_size == patch == model.backbone.site_strides[mask_layer]
    mask_gen = next(t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'SimMIMMaskGenerator')
    assert (mask_gen['mask_patch_size'], mask_gen['model_patch_size'], mask_gen['mask_ratio']) == (32, patch, 0.6)
    crop = next(t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'RandomResizedCrop')
    assert crop['crop_ratio_range'] == (0.67, 1.0)
    accumulation = cfg.optim_wrapper.get('accumulative_counts', 1)
    assert 8 * cfg.train_dataloader.batch_size * accumulation == 2048
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(lr)
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
    assert 'lr_mult' not in (cfg.optim_wrapper.get('paramwise_cfg') or {})  # openmixup's SimMIM: token at full lr
    assert (cfg.optim_wrapper.get('dtype') == 'float16') is fp16
    assert type(model).__name__ == 'SimMIM' and type(model.head.loss_module).__name__ == 'PixelReconstructionLoss'


# ------------------------------------------------------------------------- weight decay of openmixup's regex rules

_NORM = r'(bn|ln|gn)(\d+)?.(weight|bias)'
_RSB_NORM = r'(bn|gn)(\d+)?.(weight|bias)'
# recipe -> openmixup's paramwise_options keys with weight_decay=0 (its builder: re.search of each key in the name)
OPENMIXUP_NO_DECAY = {
    'a2mim/a2mim_resnet50-l3_8xb256-coslr-300e_in1k.py': [_NORM, 'bias', 'mask_token'],
    'a2mim/a2mim_resnet50-l3_8xb256-coslr-100e_in1k.py': [_NORM, 'bias', 'mask_token', 'mask_gamma'],
    'a2mim/benchmarks/resnet50_8xb256-rsb-a2-amp-coslr-300e_in1k.py': [_RSB_NORM, 'bias'],
    'a2mim/benchmarks/resnet50_4xb512-rsb-a3-amp-coslr-100e_in1k-160px.py': [_RSB_NORM, 'bias'],
    'simmim/simmim_resnet50-l0_8xb256-amp-coslr-300e_in1k.py': [_NORM, 'bias', 'mask_token'],
}


@pytest.mark.parametrize('name', sorted(OPENMIXUP_NO_DECAY))
def test_resnet_recipes_decay_exactly_the_parameters_openmixups_regexes_decay(name):
    """Including the four downsample BN weights ``layer*.0.downsample.1.weight``, which openmixup's norm regex misses
    (``paramwise_cfg.weight_decay``; without it mimlab exempts every 1-D parameter)."""
    import re

    from mimlab.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

    cfg = Config.fromfile(str(ROOT / 'configs' / name))
    cfg.model.backbone.pop('init_cfg', None)
    model = MODELS.build(cfg.model)
    optim = dict(cfg.optim_wrapper.to_dict(), type='OptimWrapper')
    optim.pop('loss_scale', None), optim.pop('dtype', None)
    wrapper = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type=optim.pop('constructor'), optim_wrapper_cfg=optim, paramwise_cfg=optim.pop('paramwise_cfg', None))
    )(model)
    ours = {n: g['weight_decay'] for g in wrapper.optimizer.param_groups for n in g['param_names']}
    wd = cfg.optim_wrapper.optimizer.weight_decay
    expected = {
        n: 0.0 if any(re.search(k, n) for k in OPENMIXUP_NO_DECAY[name]) else wd for n, _ in model.named_parameters()
    }
    assert ours == expected
    decayed_bn = sorted(n for n, w in ours.items() if w and n.endswith('downsample.1.weight'))
    assert decayed_bn == [f'backbone.layer{i}.0.downsample.1.weight' for i in range(1, 5)]
    # mimlab's earlier choice, without the option: those four exempt too
    del cfg.optim_wrapper.paramwise_cfg['weight_decay']
    optim = dict(cfg.optim_wrapper.to_dict(), type='OptimWrapper')
    optim.pop('loss_scale', None), optim.pop('dtype', None)
    wrapper = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type=optim.pop('constructor'), optim_wrapper_cfg=optim, paramwise_cfg=optim.pop('paramwise_cfg', None))
    )(model)
    plain = {n: g['weight_decay'] for g in wrapper.optimizer.param_groups for n in g['param_names']}
    assert {n for n in plain if plain[n] != ours[n]} == set(decayed_bn)


def test_convnext_mask_token_starts_at_zero_as_openmixups_unless_asked():
    import torch

    from mimlab.registry import MODELS

    zero = MODELS.build(dict(type='MIMConvNeXt', arch='test', mask_layer=3))
    zero.init_weights()
    assert torch.count_nonzero(zero.mask_token) == 0
    drawn = MODELS.build(dict(type='MIMConvNeXt', arch='test', mask_layer=3, mask_token_std=0.02))
    drawn.init_weights()
    assert 0.01 < float(drawn.mask_token.std()) < 0.03
    with pytest.raises(ValueError, match='mask_token_std'):
        MODELS.build(dict(type='MIMConvNeXt', arch='test', mask_token_std=-1.0))


# ---------------------------------------------------------------------------------------- released weights: importer


def _tiny_classifier(name: str, **backbone):
    import torch

    from mimlab.registry import MODELS

    cfg = Config.fromfile(str(BENCH / name))
    cfg.model.backbone.update(init_cfg=None, **backbone)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith('relative_position_bias_table'):
                p.normal_()
    return model.eval()


def test_importer_reads_an_openmixup_vit_classifier(tmp_path):
    """A tiny state dict written in the key layout of openmixup's fine-tuned ViTs (``MixUpClassification`` with
    ``MIMVisionTransformer(use_window=True, init_values=0.1, final_norm=False)`` and ``ClsMixupHead``)."""
    import torch

    from mimlab.converters.auto import detect_source, import_checkpoint

    model = _tiny_classifier('vit-base-p16_4xb128-accu2-amp-coslr-100e_in1k.py', arch='test', img_size=32, patch_size=8)
    model.head.fc = torch.nn.Linear(32, 1000)
    ours = model.state_dict()
    for key in [k for k in ours if k.endswith('attn.qkv.bias')]:
        ours[key][32:64] = 0  # openmixup's use_window blocks have no key bias
    theirs = {}
    for key, value in ours.items():
        name = key.replace('.attn.gamma1.weight', '.gamma_1').replace('.ffn.gamma2.weight', '.gamma_2')
        name = name.replace('backbone.ln2.', 'backbone.fc_norm.')
        if name.endswith('attn.qkv.bias'):
            q, _, v = value.chunk(3)
            theirs[name.replace('qkv.bias', 'q_bias')], theirs[name.replace('qkv.bias', 'v_bias')] = q, v
        else:
            theirs[name] = value.clone()
    assert 'backbone.fc_norm.weight' in theirs and 'backbone.layers.0.gamma_1' in theirs and 'head.fc.weight' in theirs
    path = tmp_path / 'vit_ft.pth'
    torch.save({'meta': {}, 'state_dict': theirs}, path)
    loaded = torch.load(path, weights_only=True)
    assert detect_source(loaded) == 'openmixup-cls'
    source, back = import_checkpoint(loaded)
    assert source == 'openmixup-cls' and back.keys() == ours.keys()
    fresh = _tiny_classifier('vit-base-p16_4xb128-accu2-amp-coslr-100e_in1k.py', arch='test', img_size=32, patch_size=8)
    fresh.head.fc = torch.nn.Linear(32, 1000)
    fresh.load_state_dict(back, strict=True)
    x = torch.randn(2, 3, 32, 32)
    model.load_state_dict(ours)
    torch.testing.assert_close(fresh.head(fresh.extract_feat(x)), model.head(model.extract_feat(x)))
    with pytest.raises(KeyError, match='head.extra'):
        import_checkpoint({**theirs, 'head.extra': torch.zeros(1)}, 'openmixup-cls')


def test_importer_reads_openmixup_resnet_classifiers_and_simmim_checkpoints():
    import torch

    from mimlab.converters.auto import import_checkpoint
    from mimlab.registry import MODELS

    # an RSB-fine-tuned ResNet: openmixup's names are mimlab's (mmcls ResNet + ClsMixupHead's fc)
    model = _tiny_classifier('resnet50_8xb256-rsb-a2-amp-coslr-300e_in1k.py', depth='test')
    theirs = {k: v.clone() for k, v in model.state_dict().items()}
    source, back = import_checkpoint({'state_dict': theirs}, 'openmixup-cls')
    model.load_state_dict(back, strict=True)
    with pytest.raises(KeyError, match='no head.fc.weight'):
        import_checkpoint(
            {'state_dict': {k: v for k, v in theirs.items() if k.startswith('backbone.')}}, 'openmixup-cls'
        )
    # a SimMIM baseline's pretraining checkpoint: openmixup's SimMIMNeck is already named neck.decoder.0
    cfg = Config.fromfile(str(ROOT / 'configs/simmim/simmim_resnet50-l0_8xb256-amp-coslr-300e_in1k.py'))
    cfg.model.backbone.depth = 'test'
    simmim = MODELS.build(cfg.model)
    ours = simmim.state_dict()
    assert 'neck.decoder.0.weight' in ours and ours['backbone.mask_token'].shape[:2] == (1, 16)  # stem output
    source, back = import_checkpoint({'state_dict': dict(ours)}, 'openmixup-a2mim')
    assert back.keys() == ours.keys() and all(torch.equal(back[k], ours[k]) for k in ours)
    simmim.load_state_dict(back, strict=True)


# ------------------------------------------------------------------------------------------- the table in the zoo

# the A2MIM README's summary table: backbone -> (SimMIM, A2MIM) top-1 (ViT-B: 84.3 in the per-model table)
TABLE = {
    'vit-small': (81.7, 82.1),
    'vit-base': (83.8, 84.3),
    'vit-large': (85.6, 86.1),
    'resnet50': (79.9, 80.4),
    'resnet101': (81.3, 81.9),
    'resnet152': (81.9, 82.5),
    'resnet200': (82.2, 83.0),
    'convnext-small': (83.2, 83.7),
    'convnext-base': (83.6, 84.1),
}


def test_every_number_of_the_table_is_in_the_model_zoo():
    from mimlab.apis.model_zoo import ModelHub

    hub = ModelHub(ROOT / 'model-index.yml')
    list_models = hub.list_models

    for backbone, (simmim, a2mim) in TABLE.items():
        for algo, top1 in (('simmim', simmim), ('a2mim', a2mim)):
            pre = [n for n in list_models(f'{algo}_{backbone}-*', task='null') if '100e' not in n]
            assert len(pre) == 1, (algo, backbone, pre)
            info = hub.get(pre[0])
            assert info.weights is not None, pre[0]
            assert info.metadata['Fine-tune Top 1 Accuracy'] == top1, pre[0]
            for down in info.downstream:  # a released fine-tuned file: its entry has the same top-1
                assert hub.get(down).results[0]['Metrics']['Top 1 Accuracy'] == top1, down
                assert hub.get(down).metadata['Weights Layout'] == 'openmixup-cls'
    # ResNet-50 after 100 pretraining epochs, RSB A3
    a3 = hub.get('resnet50_a2mim-100e-pre_4xb512-rsb-a3-amp-coslr-100e_in1k-160px')
    assert a3.results[0]['Metrics']['Top 1 Accuracy'] == 78.8
    finetuned = [
        n for n in list_models(task='Image Classification') if hub.get(n).metafile.endswith('a2mim/metafile.yml')
    ]
    assert len(finetuned) == 13  # every released fine-tuned file with a published top-1
