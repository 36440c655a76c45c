"""SimMIM: the mask generator, the masked-pixel L1, parity with mmpretrain 1.2.0, and the PixMIM plug-in."""

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mimlab.models.algorithms.simmim import SimMIMMaskGenerator
from mimlab.registry import MODELS
from mimlab.structures import DataSample

CFG = 'configs/simmim/simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py'


def _samples(mask: torch.Tensor) -> list:
    return [DataSample().set_mask(m) for m in mask]


def test_mask_generator_masks_exactly_22_of_36_blocks():
    gen = SimMIMMaskGenerator(input_size=192, mask_patch_size=32, model_patch_size=4, mask_ratio=0.6)
    for seed in range(50):
        np.random.seed(seed)
        mask = gen(dict())['mask']
        assert mask.shape == (48, 48)
        blocks = mask[::8, ::8]
        assert blocks.sum() == 22
        # every 8x8 patch group (one 32-px block) is constant
        assert np.array_equal(np.kron(blocks, np.ones((8, 8), dtype=int)), mask)


def _tiny_simmim(**extra):
    model = MODELS.build(
        dict(
            type='SimMIM',
            backbone=dict(type='SimMIMSwinTransformer', arch='test', img_size=64, window_size=2),
            neck=dict(type='SimMIMLinearDecoder'),
            head=dict(type='SimMIMHead'),
            **extra,
        )
    )
    model.init_weights()
    return model


def test_loss_ignores_visible_pixels():
    model = _tiny_simmim().eval()
    x = torch.randn(2, 3, 64, 64)
    np.random.seed(0)
    gen = SimMIMMaskGenerator(64, 16, 4, 0.6)
    mask = torch.from_numpy(np.stack([gen(dict())['mask'] for _ in range(2)]))  # (2, 16, 16)
    pred = model.neck(model.backbone.forward_masked(x, mask)[-1])
    pixel_mask = mask.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1).bool()
    loss = model.head.loss(pred, x, mask)
    assert torch.allclose(loss, (pred - x).abs().masked_select(pixel_mask.expand_as(x)).mean())
    changed = torch.where(pixel_mask, pred, pred + 5.0)  # change only visible pixels
    assert torch.allclose(model.head.loss(changed, x, mask), loss)


def test_pixmim_plug_in_for_simmim():
    model = _tiny_simmim(target_generator=dict(type='LowFreqTargetGenerator', radius=8, img_size=64)).eval()
    x = torch.randn(2, 3, 64, 64)
    mask = torch.ones(2, 16, 16, dtype=torch.long)
    target = model.make_target(x)
    assert not torch.allclose(target, x)
    pred = model.neck(model.backbone.forward_masked(x, mask)[-1])
    assert torch.allclose(model.loss(x, _samples(mask))['loss'], model.head.loss(pred, target, mask))


def test_simmim_vit_forward_and_loss():
    model = MODELS.build(
        dict(
            type='SimMIM',
            backbone=dict(type='SimMIMViT', arch='test', img_size=32, patch_size=8),
            neck=dict(type='SimMIMLinearDecoder'),
            head=dict(type='SimMIMHead'),
        )
    )
    model.init_weights()
    mask = torch.zeros(2, 4, 4, dtype=torch.long)
    mask[:, :2] = 1
    loss = model.loss(torch.randn(2, 3, 32, 32), _samples(mask))['loss']
    loss.backward()
    assert torch.isfinite(loss) and model.backbone.mask_token.grad is not None


@pytest.fixture(scope='module')
def simmim_pair(request):
    from pathlib import Path

    import mmpretrain
    from mmpretrain.registry import MODELS as PT_MODELS

    ours = MODELS.build(Config.fromfile(str(Path(request.config.rootpath) / CFG)).model)
    ours.init_weights()
    ref_cfg = Config.fromfile(f'{mmpretrain.__path__[0]}/.mim/configs/simmim/{Path(CFG).name}')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ref = PT_MODELS.build(ref_cfg.model)
    return ours, ref


def test_keys_and_shapes_equal_mmpretrain(simmim_pair):
    ours, ref = simmim_pair
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}


def test_loss_equals_mmpretrain_on_identical_weights_and_mask(simmim_pair):
    ours, ref = simmim_pair
    ref.load_state_dict(ours.state_dict(), strict=True)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval(), ref.eval()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 192, 192)
    np.random.seed(0)
    mask = torch.from_numpy(SimMIMMaskGenerator()(dict())['mask'])[None]
    with torch.no_grad():
        a = ours.loss(x, _samples(mask))['loss']
        b = ref.loss(x, _samples(mask))['loss']
    assert abs(a.item() - b.item()) < 1e-5, (a.item(), b.item())
