"""Swin backbone: parity with mmpretrain's SwinTransformer, window-size changes on load, the backbone contract."""

import pytest
import torch
from mmengine.registry import DefaultScope

from mimlab.models.backbones import SwinTransformer
from mimlab.models.backbones.swin import ShiftWindowMSA


def _ref(**kwargs):
    from mmpretrain.models.backbones import SwinTransformer as Ref

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return Ref(**kwargs)


@pytest.mark.parametrize('size,window', [(192, 6), (224, 7)])
def test_swin_base_features_equal_mmpretrain(size, window):
    kwargs = dict(arch='base', img_size=size, window_size=window, out_indices=(0, 1, 2, 3), drop_path_rate=0.0)
    torch.manual_seed(0)
    ours = SwinTransformer(**kwargs)
    ours.init_weights()
    ref = _ref(**kwargs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    ref.load_state_dict(ours.state_dict(), strict=True)
    ours.eval(), ref.eval()
    # stages 0-2 alternate plain and shifted windows; the last stage's map equals the window, so it never shifts
    assert [b.attn.shift_size for b in ours.stages[2].blocks[:2]] == [0, window // 2]
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        for a, b in zip(ours(x), ref(x), strict=True):
            assert a.shape == b.shape
            assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def test_padding_and_small_maps_match_mmpretrain():
    kwargs = dict(arch='test', img_size=100, window_size=7, out_indices=(0, 1, 2, 3), pad_small_map=True)
    ours = SwinTransformer(**kwargs)
    ours.init_weights()
    ref = _ref(**{**kwargs, 'arch': dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 2, 2])})
    ref.load_state_dict(ours.state_dict(), strict=True)
    ours.eval(), ref.eval()
    x = torch.randn(2, 3, 100, 100)  # 25x25 tokens: padding to windows and an odd map for patch merging
    with torch.no_grad():
        for a, b in zip(ours(x), ref(x), strict=True):
            assert torch.allclose(a, b, atol=1e-5)


def test_window6_checkpoint_loads_into_window7_model():
    src = SwinTransformer(arch='test', img_size=192, window_size=6)
    src.init_weights()
    dst = SwinTransformer(arch='test', img_size=224, window_size=7)
    own_index = dst.stages[0].blocks[0].attn.w_msa.relative_position_index.clone()
    result = dst.load_state_dict(src.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    table = dst.stages[0].blocks[0].attn.w_msa.relative_position_bias_table
    assert table.shape == (13 * 13, 1)
    # the stale (36 x 36) index buffers were replaced by this model's (49 x 49) ones
    assert torch.equal(dst.stages[0].blocks[0].attn.w_msa.relative_position_index, own_index)
    assert dst(torch.randn(1, 3, 224, 224))[0].shape == (1, 128, 7, 7)
    # the resize keeps a constant table constant
    sd = src.state_dict()
    sd['stages.0.blocks.0.attn.w_msa.relative_position_bias_table'].fill_(0.25)
    dst.load_state_dict(sd)
    assert torch.allclose(table, torch.full_like(table, 0.25), atol=1e-6)


def test_layer_depth_matches_mmpretrain_rule():
    ours = SwinTransformer(arch='base')
    ref = _ref(arch='base')
    names = [n for n, _ in ours.named_parameters()] + ['head.fc.weight']
    for name in names:
        assert ours.get_layer_depth('backbone.' + name, 'backbone.') == ref.get_layer_depth(
            'backbone.' + name, 'backbone.'
        ), name
    assert ours.get_layer_depth('backbone.stages.2.blocks.3.attn.w_msa.qkv.weight', 'backbone.') == (2 + 2 + 3 + 1, 26)
    assert ours.get_layer_depth('backbone.stages.1.downsample.reduction.weight', 'backbone.') == (4, 26)


def test_contract_tiny_arch_gradients_and_no_weight_decay():
    m = SwinTransformer(arch='test', img_size=64, window_size=2, out_indices=(3,), use_abs_pos_embed=True)
    m.init_weights()
    out = m(torch.randn(2, 3, 64, 64))
    assert out[0].shape == (2, 128, 2, 2) and m.embed_dims == 16 and m.out_indices == (3,)
    out[0].sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    nwd = m.no_weight_decay()
    assert 'absolute_pos_embed' in nwd and 'stages.0.blocks.0.attn.w_msa.relative_position_bias_table' in nwd


def test_small_map_without_padding_is_a_clear_error():
    attn = ShiftWindowMSA(8, 1, 7, True, True, 0.0, 0.0, pad_small_map=False)
    with pytest.raises(ValueError, match='smaller than the window'):
        attn(torch.randn(1, 25, 8), (5, 5))
