"""SimMIM: the mask generator, the masked-pixel L1, parity with mmpretrain 1.2.0 (model, loss, recipes), the ViT
variant, and the PixMIM plug-in."""

from pathlib import Path

import mmpretrain
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mimlab.models.algorithms.simmim import SimMIMMaskGenerator
from mimlab.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS, PARAM_SCHEDULERS
from mimlab.structures import DataSample

ROOT = Path(__file__).resolve().parents[1]
REF_CONFIGS = Path(mmpretrain.__path__[0]) / '.mim' / 'configs' / 'simmim'
SWIN_RECIPES = [
    'simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py',
    'simmim_swin-base-w6_16xb128-amp-coslr-800e_in1k-192px.py',
    'simmim_swin-large-w12_16xb128-amp-coslr-800e_in1k-192px.py',
]


def _samples(mask: torch.Tensor) -> list:
    return [DataSample().set_mask(m) for m in mask]


def _masks(gen: SimMIMMaskGenerator, n: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([gen(dict())['mask'] for _ in range(n)]))  # (n, Hp, Wp)


# ----------------------------------------------------------------------------------------------------------- mask


@pytest.mark.parametrize(
    'size,block,patch,count', [(192, 32, 4, 22), (224, 32, 16, 30), (32, 16, 4, 3)]
)  # ceil(36 * 0.6), ceil(49 * 0.6), ceil(4 * 0.6)
def test_mask_generator_masks_exact_block_count(size, block, patch, count):
    gen = SimMIMMaskGenerator(input_size=size, mask_patch_size=block, model_patch_size=patch, mask_ratio=0.6)
    scale, grid = block // patch, size // patch
    seen = set()
    for seed in range(50):
        np.random.seed(seed)
        mask = gen(dict())['mask']
        assert mask.shape == (grid, grid) and mask.dtype == np.int64
        blocks = mask[::scale, ::scale]
        assert blocks.sum() == count
        assert np.array_equal(np.kron(blocks, np.ones((scale, scale), dtype=np.int64)), mask)  # whole blocks
        seen.add(blocks.tobytes())
    assert len(seen) > 1  # the draw varies with the seed


def test_mask_generator_follows_numpy_global_rng_and_rejects_bad_sizes():
    gen = SimMIMMaskGenerator()
    np.random.seed(3)
    a = gen(dict())['mask']
    np.random.seed(3)
    assert np.array_equal(gen(dict())['mask'], a)
    with pytest.raises(ValueError, match='multiple'):
        SimMIMMaskGenerator(input_size=200)
    with pytest.raises(ValueError, match='multiple'):
        SimMIMMaskGenerator(mask_patch_size=30, model_patch_size=4)


# ------------------------------------------------------------------------------------------------- tiny models


def _tiny_simmim(backbone: dict | None = None, **extra):
    backbone = backbone or dict(type='SimMIMSwinTransformer', arch='test', img_size=64, window_size=2)
    model = MODELS.build(
        dict(
            type='SimMIM',
            backbone=backbone,
            neck=dict(type='SimMIMLinearDecoder'),
            head=dict(type='SimMIMHead'),
            **extra,
        )
    )
    model.init_weights()
    return model


def test_sizes_are_inferred_from_the_backbone():
    swin = _tiny_simmim()
    assert swin.neck.decoder[0].in_channels == 128 and swin.neck.decoder[1].upscale_factor == 32
    assert swin.neck.decoder[0].out_channels == 32 * 32 * 3 and swin.head.patch_size == 4
    vit = _tiny_simmim(dict(type='SimMIMViT', arch='test', img_size=32, patch_size=8))
    assert vit.neck.decoder[0].in_channels == 32 and vit.neck.decoder[1].upscale_factor == 8
    assert vit.head.patch_size == 8


def test_mask_token_replaces_exactly_the_masked_patches():
    model = _tiny_simmim().eval()
    backbone = model.backbone
    x = torch.randn(1, 3, 64, 64)
    mask = torch.zeros(1, 16, 16, dtype=torch.long)
    with torch.no_grad():
        plain = backbone(x)[0]
        assert torch.allclose(backbone.forward_masked(x, mask)[0], plain, atol=1e-6)  # nothing masked: plain Swin
        mask[0, :8] = 1
        with pytest.raises(ValueError, match=r'\(8, 16\) does not match the feature map \(16, 16\) at mask site'):
            backbone.forward_masked(x, mask[:, :8])
        # a masked patch's content no longer matters
        x2 = x.clone()
        x2[..., :32, :] = torch.randn(1, 3, 32, 64)  # rows 0-7 of the 4-px patch grid
        assert torch.allclose(backbone.forward_masked(x2, mask)[0], backbone.forward_masked(x, mask)[0], atol=1e-6)


def test_loss_ignores_visible_pixels():
    model = _tiny_simmim().eval()
    x = torch.randn(2, 3, 64, 64)
    np.random.seed(0)
    mask = _masks(SimMIMMaskGenerator(64, 16, 4, 0.6), 2)  # (2, 16, 16)
    pred = model.neck(model.backbone.forward_masked(x, mask)[-1])
    assert pred.shape == x.shape
    pixel_mask = mask.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1).bool()  # (2, 1, 64, 64)
    loss = model.head.loss(pred, x, mask)
    # mean over masked pixels and all 3 channels
    assert torch.allclose(loss, (pred - x).abs().masked_select(pixel_mask.expand_as(x)).mean())
    changed = torch.where(pixel_mask, pred, pred + 5.0)  # change only visible pixels
    assert torch.allclose(model.head.loss(changed, x, mask), loss)
    assert not torch.allclose(model.head.loss(torch.where(pixel_mask, pred + 5.0, pred), x, mask), loss)


def test_pixmim_plug_in_for_simmim():
    model = _tiny_simmim(target_generator=dict(type='LowFreqTargetGenerator', radius=8, img_size=64)).eval()
    x = torch.randn(2, 3, 64, 64)
    np.random.seed(1)
    mask = _masks(SimMIMMaskGenerator(64, 16, 4, 0.6), 2)
    target = model.make_target(x)
    assert not torch.allclose(target, x)
    with torch.no_grad():
        pred = model.neck(model.backbone.forward_masked(x, mask)[-1])
        loss = model.loss(x, _samples(mask))['loss']
        assert torch.allclose(loss, model.head.loss(pred, target, mask))
        assert not torch.allclose(loss, model.head.loss(pred, x, mask))


def test_loss_without_mask_is_a_clear_error():
    model = _tiny_simmim()
    with pytest.raises(ValueError, match='SimMIMMaskGenerator'):
        model.loss(torch.randn(1, 3, 64, 64), [DataSample()])


@pytest.mark.parametrize(
    'backbone,img,block',
    [
        (dict(type='SimMIMSwinTransformer', arch='test', img_size=64, window_size=2), 64, 16),
        (dict(type='SimMIMViT', arch='test', img_size=32, patch_size=8), 32, 16),
    ],
)
def test_every_trainable_parameter_gets_a_gradient(backbone, img, block):
    model = _tiny_simmim(backbone).train()
    np.random.seed(0)
    gen = SimMIMMaskGenerator(img, block, model.head.patch_size, 0.6)
    loss = model.loss(torch.randn(2, 3, img, img), _samples(_masks(gen, 2)))['loss']
    assert torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not missing
    assert 'backbone.mask_token' in model.no_weight_decay()
    assert model.get_layer_depth('backbone.mask_token')[0] == 0
    assert model.extract_feat(torch.randn(1, 3, img, img))[-1].shape[0] == 1  # plain features, no mask needed


def test_simmim_vit_feature_map():
    model = _tiny_simmim(dict(type='SimMIMViT', arch='test', img_size=32, patch_size=8))
    mask = torch.zeros(2, 4, 4, dtype=torch.long)
    out = model.backbone.forward_masked(torch.randn(2, 3, 32, 32), mask)
    assert len(out) == 1 and out[0].shape == (2, 32, 4, 4)
    assert model.neck(out[0]).shape == (2, 3, 32, 32)


def test_weight_decay_groups_of_the_recipe():
    model = _tiny_simmim(dict(type='SimMIMSwinTransformer', arch='test', img_size=64, window_size=2))
    cfg = Config.fromfile(str(ROOT / 'configs/simmim' / SWIN_RECIPES[0]))
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type=cfg.optim_wrapper.constructor,
            optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=cfg.optim_wrapper.optimizer),
        )
    )
    wd = {n: g['weight_decay'] for g in constructor(model).optimizer.param_groups for n in g['param_names']}
    params = dict(model.named_parameters())
    assert set(wd) == set(params)
    for name, value in wd.items():
        exempt = params[name].ndim <= 1 or name.endswith(('relative_position_bias_table', 'mask_token'))
        assert value == (0.0 if exempt else 0.05), name
    assert wd['backbone.stages.0.blocks.0.attn.w_msa.qkv.weight'] == 0.05 and wd['neck.decoder.0.weight'] == 0.05


# ------------------------------------------------------------------------------------- parity with mmpretrain


def test_swin_large_recipe_keys_and_shapes_equal_mmpretrain():
    # (the Swin-B recipes' keys are checked by the strict loads of the loss-parity test below)
    from mmpretrain.registry import MODELS as PT_MODELS

    ours_cfg = Config.fromfile(str(ROOT / 'configs/simmim' / SWIN_RECIPES[2]))
    ref_cfg = Config.fromfile(str(REF_CONFIGS / SWIN_RECIPES[2]))
    ours = MODELS.build(ours_cfg.model)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ref = PT_MODELS.build(ref_cfg.model)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    assert ours.backbone.window_size == ref_cfg.model.backbone.stage_cfgs.block_cfgs.window_size
    assert ours.backbone.stages[3].blocks[0].attn.pad_small_map == ref_cfg.model.backbone.get('pad_small_map', False)


def _lr_per_iter(cfg: Config, epoch_length: int = 3) -> list[float]:
    """The lr of every iteration, as the runner would step the recipe's schedulers."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=cfg.optim_wrapper.optimizer.lr)
    max_epochs = cfg.train_cfg.max_epochs
    schedulers = [
        PARAM_SCHEDULERS.build(
            {'end': max_epochs, **s}, default_args=dict(optimizer=opt, epoch_length=epoch_length)
        )  # the runner's default `end` is max_epochs
        for s in cfg.param_scheduler
    ]
    lrs = []
    for _ in range(max_epochs * epoch_length):
        lrs.append(opt.param_groups[0]['lr'])
        for s in schedulers:
            s.step()
    return lrs


@pytest.mark.parametrize('name', SWIN_RECIPES[:2])
def test_recipe_optimizer_and_lr_per_iteration_equal_mmpretrain(name):
    ours = Config.fromfile(str(ROOT / 'configs/simmim' / name))
    ref = Config.fromfile(str(REF_CONFIGS / name))
    for key in ('type', 'lr', 'betas', 'weight_decay'):
        assert ours.optim_wrapper.optimizer[key] == ref.optim_wrapper.optimizer[key], key
    assert ours.optim_wrapper.clip_grad == ref.optim_wrapper.clip_grad
    assert ours.train_cfg.max_epochs == ref.train_cfg.max_epochs
    # 8 x 256 or 16 x 128 = 2048 images per step, as the config name says; mmpretrain's 16xb128 configs inherit
    # batch_size=256 from their dataset base (4096 on 16 GPUs) while keeping the lr of 2048
    gpus, per_gpu = (int(v) for v in name.split('_')[2].split('-')[0].split('xb'))
    assert ours.train_dataloader.batch_size == per_gpu and gpus * per_gpu == ours.auto_scale_lr.base_batch_size
    assert ours.auto_scale_lr == ref.auto_scale_lr
    a, b = _lr_per_iter(ours), _lr_per_iter(ref)
    assert np.allclose(a, b, rtol=1e-9, atol=0), max(abs(x - y) for x, y in zip(a, b, strict=True))
    assert a[0] == pytest.approx(ref.optim_wrapper.optimizer.lr * ref.param_scheduler[0].start_factor)


@pytest.fixture(scope='module')
def simmim_pair():
    from mmpretrain.registry import MODELS as PT_MODELS

    torch.manual_seed(0)
    ours = MODELS.build(Config.fromfile(str(ROOT / 'configs/simmim' / SWIN_RECIPES[0])).model)
    ours.init_weights()
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ref = PT_MODELS.build(Config.fromfile(str(REF_CONFIGS / SWIN_RECIPES[0])).model)
    return ours, ref


@pytest.mark.parametrize('direction', ['ours->ref', 'ref->ours'])
def test_loss_equals_mmpretrain_on_identical_weights_and_mask(simmim_pair, direction):
    ours, ref = simmim_pair
    if direction == 'ours->ref':
        ref.load_state_dict(ours.state_dict(), strict=True)
    else:
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            ref.init_weights()
        ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval(), ref.eval()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 192, 192)
    np.random.seed(0)
    mask = _masks(SimMIMMaskGenerator(), 1)  # (1, 48, 48)
    with torch.no_grad():
        a = ours.loss(x, _samples(mask))['loss']
        b = ref.loss(x, _samples(mask))['loss']
    assert abs(a.item() - b.item()) < 1e-5, (a.item(), b.item())
