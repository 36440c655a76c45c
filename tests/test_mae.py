"""MAE: exact tests of the math, and parity with mmpretrain 1.2.0 on identical weights and seeds."""

import math

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mimlab.models.algorithms.mae import patchify, random_masking, unpatchify
from mimlab.models.layers import build_2d_sincos_position_embedding
from mimlab.registry import MODELS
from tests.helpers import tiny_mae

MAE_B_CFG = 'configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'


# ----------------------------------------------------------------------------------------------------- masking
@pytest.mark.parametrize('ratio', [0.75, 0.6, 0.9, 0.0])
def test_masking_keeps_exact_count_and_restores(ratio):
    B, L, D = 4, 196, 8
    x = torch.randn(B, L, D)
    torch.manual_seed(0)
    x_vis, mask, ids_restore = random_masking(x, ratio)
    keep = int(L * (1 - ratio))
    assert x_vis.shape == (B, keep, D)
    assert torch.equal(mask.sum(1), torch.full((B,), float(L - keep)))
    # ids_restore is the inverse of the shuffle: gathering the shuffled sequence by it gives raster order back
    torch.manual_seed(0)
    noise = torch.rand(B, L)
    ids_shuffle = noise.argsort(1)
    assert torch.equal(ids_shuffle.gather(1, ids_restore), torch.arange(L).expand(B, L))
    # kept tokens are exactly the unmasked positions, in shuffle order
    kept_positions = ids_shuffle[:, :keep]
    assert torch.equal(mask.gather(1, kept_positions), torch.zeros(B, keep))
    assert torch.equal(x_vis, x.gather(1, kept_positions.unsqueeze(-1).expand(-1, -1, D)))


def test_masks_differ_per_sample():
    torch.manual_seed(1)
    _, mask, _ = random_masking(torch.zeros(8, 196, 4), 0.75)
    assert len({tuple(m.tolist()) for m in mask}) == 8


# ------------------------------------------------------------------------------------------------- patchify
def test_patchify_round_trip_and_layout():
    img = torch.randn(2, 3, 32, 48)
    patches = patchify(img, 8)
    assert patches.shape == (2, 4 * 6, 8 * 8 * 3)
    assert torch.equal(unpatchify(patches, 8, (4, 6)), img)
    # patch (row 1, col 2), pixel (r=3, c=5), channel 2 sits at index (3*8 + 5)*3 + 2: channels last
    assert patches[1, 1 * 6 + 2, (3 * 8 + 5) * 3 + 2] == img[1, 2, 8 + 3, 16 + 5]


# ------------------------------------------------------------------------------------------------ sin-cos table
def test_sincos_table_values():
    D, grid = 16, (3, 4)
    table = build_2d_sincos_position_embedding(grid, D, cls_token=True)[0]
    assert table.shape == (1 + 12, D)
    assert torch.equal(table[0], torch.zeros(D))
    q = D // 4
    omega = [1 / 10000 ** (k / q) for k in range(q)]
    for token in range(12):
        y, x = divmod(token, 4)  # raster order
        expect = (
            [math.sin(x * w) for w in omega]
            + [math.cos(x * w) for w in omega]
            + [math.sin(y * w) for w in omega]
            + [math.cos(y * w) for w in omega]
        )
        assert torch.allclose(table[1 + token], torch.tensor(expect, dtype=torch.float32), atol=1e-6)


def test_sincos_equals_mmpretrain_with_halves_swapped():
    from mmpretrain.models.utils import build_2d_sincos_position_embedding as ref

    ours = build_2d_sincos_position_embedding(14, 768, cls_token=True)
    theirs = ref(14, 768, cls_token=True)
    assert torch.allclose(ours[..., :384], theirs[..., 384:], atol=1e-6)
    assert torch.allclose(ours[..., 384:], theirs[..., :384], atol=1e-6)


# --------------------------------------------------------------------------------------------------- loss
def test_loss_counts_masked_patches_only():
    model = tiny_mae(patch_size=4).eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    latent, mask, ids_restore = model.backbone.forward_masked(x)
    pred = model.neck(latent, ids_restore)
    target = model.head.construct_target(x)
    per_patch = ((pred - target) ** 2).mean(-1)
    expected = (per_patch * mask).sum() / mask.sum()
    assert torch.allclose(model.head.loss(pred, x, mask), expected)
    # changing the prediction on visible patches changes nothing
    pred2 = torch.where(mask.bool().unsqueeze(-1), pred, pred + 100.0)
    assert torch.allclose(model.head.loss(pred2, x, mask), expected)


def _loss_and_grads(model, x, masked_only):
    model.zero_grad(set_to_none=True)
    model.predict_masked_only = masked_only  # False: decode and predict every patch, weight by the mask
    torch.manual_seed(7)
    loss = model.loss(x, None)['loss']
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_predicting_masked_patches_only_gives_the_full_loss_and_gradients():
    # MAE.loss runs the decoder's last block, norm and prediction for the removed patches only; the visible
    # patches' predictions never reach the loss, so the loss and every gradient equal the full computation's
    model = tiny_mae(patch_size=4, decoder_depth=2).train()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    full_loss, full = _loss_and_grads(model, x, False)
    loss, grads = _loss_and_grads(model, x, True)
    assert torch.allclose(loss, full_loss, rtol=1e-6, atol=0)
    assert grads.keys() == full.keys() and len(grads) == len(list(model.parameters())) - 2  # fixed pos tables
    for name in full:
        assert torch.allclose(grads[name], full[name], rtol=1e-4, atol=1e-7), name


def test_patch_embedding_of_chosen_patches_equals_the_conv():
    model = tiny_mae(patch_size=4)
    pe = model.backbone.patch_embed
    x = torch.randn(2, 3, 32, 32)
    index = torch.tensor([[0, 5, 63, 17], [8, 9, 1, 40]])
    full = torch.gather(pe(x)[0], 1, index.unsqueeze(-1).expand(-1, -1, 32))
    assert torch.allclose(pe.forward_at(x, index), full, atol=1e-6)


def test_masked_encoder_rejects_another_image_size():
    model = tiny_mae(patch_size=4)
    with pytest.raises(ValueError, match=r'\(8, 8\) patch grid, got \(32, 64\)'):
        model.backbone.forward_masked(torch.randn(1, 3, 32, 64))


def test_norm_pix_target_is_per_patch_standardised():
    model = tiny_mae(patch_size=4)
    x = torch.randn(2, 3, 32, 32) * 5 + 3
    t = model.head.construct_target(x)
    assert torch.allclose(t.mean(-1), torch.zeros(2, 64), atol=1e-5)
    assert torch.allclose(t.var(-1), torch.ones(2, 64), atol=1e-3)


def test_reconstruct_outputs():
    model = tiny_mae(patch_size=4).eval()
    x = torch.randn(2, 3, 32, 32)
    out = model.reconstruct(x)
    assert out['pred'].shape == (2, 3, 32, 32) and out['mask'].shape == (2, 1, 32, 32)
    assert torch.allclose(out['mask'].mean((1, 2, 3)), torch.full((2,), 0.75))
    visible = out['mask'] == 0
    assert torch.equal(out['pasted'].masked_select(visible), x.masked_select(visible.expand_as(x)))


def test_extract_feat_is_plain_vit():
    model = tiny_mae(patch_size=4).eval()
    feats = model.extract_feat(torch.randn(2, 3, 32, 32))
    assert feats[0].shape == (2, 1 + 64, 32)


# ---------------------------------------------------------------------------------------- mmpretrain parity
def _mmpretrain_mae(repo_root):
    from mmpretrain.registry import MODELS as PT_MODELS
    from mmpretrain.utils import register_all_modules as pt_register

    pt_register(init_default_scope=False)
    import mmpretrain
    from mmengine.registry import DefaultScope

    cfg = Config.fromfile(f'{mmpretrain.__path__[0]}/.mim/configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return PT_MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def mae_pair(request):
    from pathlib import Path

    repo_root = Path(request.config.rootpath)
    cfg = Config.fromfile(str(repo_root / MAE_B_CFG))
    ours = MODELS.build(cfg.model)
    ours.init_weights()
    theirs = _mmpretrain_mae(repo_root)
    return ours, theirs


def test_state_dict_keys_and_shapes_equal_mmpretrain(mae_pair):
    ours, theirs = mae_pair
    a = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert a == b


@pytest.mark.parametrize('direction', ['theirs_into_ours', 'ours_into_theirs'])
def test_loss_equals_mmpretrain(mae_pair, direction):
    ours, theirs = mae_pair
    if direction == 'theirs_into_ours':
        torch.manual_seed(3)
        theirs.init_weights()
        ours.load_state_dict(theirs.state_dict(), strict=True)
    else:
        theirs.load_state_dict(ours.state_dict(), strict=True)
    ours.eval(), theirs.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.manual_seed(42)
        ours_loss = ours.loss(x, None)['loss']
        torch.manual_seed(42)
        their_loss = theirs.loss(x, None)['loss']
    assert np.isfinite(ours_loss.item())
    print(direction, ours_loss.item(), their_loss.item())
    assert abs(ours_loss.item() - their_loss.item()) < 1e-5, (ours_loss.item(), their_loss.item())
