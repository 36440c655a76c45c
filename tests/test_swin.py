"""Swin backbone: parity with mmpretrain's SwinTransformer, window-size changes on load, the backbone contract."""

import logging

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

from mimlab.models.backbones import SwinTransformer
from mimlab.models.backbones.swin import ShiftWindowMSA, resize_bias_table
from mimlab.registry import MODELS

TEST_ARCH = dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 2, 2])


def _ref(**kwargs):
    from mmpretrain.models.backbones import SwinTransformer as Ref

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return Ref(**kwargs)


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base', 'large'])
def test_arch_zoo_matches_mmpretrain(arch):
    from mmpretrain.models.backbones import SwinTransformer as Ref

    assert SwinTransformer.arch_zoo[arch] == Ref.arch_zoo[arch] == SwinTransformer.arch_zoo[arch[0]]


@pytest.mark.parametrize('size,window', [(192, 6), (224, 7)])
def test_swin_base_features_equal_mmpretrain(size, window):
    kwargs = dict(arch='base', img_size=size, window_size=window, out_indices=(0, 1, 2, 3), drop_path_rate=0.0)
    torch.manual_seed(0)
    ours = SwinTransformer(**kwargs)
    ours.init_weights()
    ref = _ref(**kwargs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    # the index buffers are built independently, not copied across
    for key, value in ref.state_dict().items():
        if key.endswith('relative_position_index'):
            assert torch.equal(ours.state_dict()[key], value), key
    ref.load_state_dict(ours.state_dict(), strict=True)
    ours.eval(), ref.eval()
    # stages 0-2 alternate plain and shifted windows; the last stage's map equals the window, so it never shifts
    assert [b.attn.shift_size for b in ours.stages[2].blocks[:2]] == [0, window // 2]
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        outs, refs = ours(x), ref(x)
    assert [tuple(o.shape) for o in outs] == [(1, 128 * 2**i, size // 4 // 2**i, size // 4 // 2**i) for i in range(4)]
    for a, b in zip(outs, refs, strict=True):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


@pytest.mark.parametrize('shift', [False, True])
@pytest.mark.parametrize('hw,window', [((12, 12), 6), ((14, 14), 7), ((9, 13), 4)])
def test_window_attention_with_and_without_shift_equals_mmpretrain(shift, hw, window):
    from mmpretrain.models.utils.attention import ShiftWindowMSA as Ref

    torch.manual_seed(0)
    ours = ShiftWindowMSA(32, 4, window, shift, True, 0.0, 0.0, pad_small_map=False)
    torch.nn.init.normal_(ours.w_msa.relative_position_bias_table, std=0.5)  # a bias large enough to matter
    ref = Ref(32, 4, window, shift_size=window // 2 if shift else 0)
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(3, hw[0] * hw[1], 32)
    assert torch.allclose(ours(x, hw), ref(x, hw), atol=1e-5)


def test_padding_and_small_maps_match_mmpretrain():
    kwargs = dict(arch='test', img_size=100, window_size=7, out_indices=(0, 1, 2, 3), pad_small_map=True)
    ours = SwinTransformer(**kwargs)
    ours.init_weights()
    ref = _ref(**{**kwargs, 'arch': TEST_ARCH})
    ref.load_state_dict(ours.state_dict(), strict=True)
    ours.eval(), ref.eval()
    x = torch.randn(2, 3, 100, 100)  # 25x25 tokens: padding to windows and odd maps for patch merging
    with torch.no_grad():
        for a, b in zip(ours(x), ref(x), strict=True):
            assert torch.allclose(a, b, atol=1e-5)


@pytest.fixture
def log_lines():
    logger = MMLogger.get_current_instance()
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


@pytest.mark.parametrize('src_cfg,dst_cfg', [((192, 6), (224, 7)), ((192, 12), (224, 14))])
def test_other_window_checkpoint_loads_strictly(src_cfg, dst_cfg, log_lines):
    (src_size, src_w), (dst_size, dst_w) = src_cfg, dst_cfg
    src = SwinTransformer(arch='test', img_size=src_size, window_size=src_w, pad_small_map=True)
    src.init_weights()
    dst = SwinTransformer(arch='test', img_size=dst_size, window_size=dst_w, pad_small_map=True)
    own = {k: v.clone() for k, v in dst.state_dict().items()}
    sd = src.state_dict()

    # exactly the bias tables and index buffers differ in shape; nothing else needs adapting
    differing = {k for k in sd if sd[k].shape != own[k].shape}
    tables = {k for k in sd if k.endswith('relative_position_bias_table')}
    indices = {k for k in sd if k.endswith('relative_position_index')}
    assert differing == tables | indices and len(tables) == sum(dst.depths) == 5

    result = dst.load_state_dict(dict(sd), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    loaded = dst.state_dict()
    for key in sd:
        if key in tables:
            assert loaded[key].shape == ((2 * dst_w - 1) ** 2, own[key].shape[1])
            assert torch.allclose(loaded[key], resize_bias_table(sd[key], dst_w))
        elif key in indices:  # the stale buffers were dropped; the model's own ones stay
            assert torch.equal(loaded[key], own[key])
        else:
            assert torch.equal(loaded[key], sd[key]), key
    log = '\n'.join(log_lines)
    assert f'Resized 5 relative_position_bias_table(s) to window {dst_w}' in log
    assert f'rebuilt them for window {dst_w}' in log
    assert all(k in log for k in tables | indices)
    assert dst(torch.randn(1, 3, dst_size, dst_size))[0].shape == (1, 128, dst_size // 32, dst_size // 32)


def test_bias_table_resize_is_bicubic_on_the_offset_grid():
    table = torch.randn(11 * 11, 3)
    assert torch.equal(resize_bias_table(table, 6), table)  # same window: unchanged
    assert torch.allclose(resize_bias_table(torch.full((121, 2), 0.25), 7), torch.full((169, 2), 0.25), atol=1e-6)
    # a table linear in the offsets stays (nearly) linear after resampling: the grid is rescaled, not shifted
    dy = torch.arange(11.0).repeat_interleave(11) - 5
    out = resize_bias_table(dy[:, None], 7)
    centre = out.view(13, 13)[6]
    assert torch.allclose(centre, torch.zeros(13), atol=1e-5)  # row of zero dy offset stays zero


def test_same_window_checkpoint_logs_nothing(log_lines):
    src = SwinTransformer(arch='test', img_size=64, window_size=2)
    dst = SwinTransformer(arch='test', img_size=64, window_size=2)
    dst.load_state_dict(src.state_dict(), strict=True)
    assert not any('relative_position' in line for line in log_lines)


def test_absolute_pos_embed_of_another_grid_is_interpolated(log_lines):
    src = SwinTransformer(arch='test', img_size=192, window_size=6, use_abs_pos_embed=True)
    src.init_weights()
    dst = SwinTransformer(arch='test', img_size=224, window_size=7, use_abs_pos_embed=True, pad_small_map=True)
    dst.load_state_dict(src.state_dict(), strict=True)
    assert dst.absolute_pos_embed.shape == (1, 56 * 56, 16)
    assert any('Resize absolute_pos_embed from (1, 2304, 16) to (1, 3136, 16)' in line for line in log_lines)
    # the model also runs on inputs of other sizes (the table is resized on the fly)
    assert dst(torch.randn(1, 3, 112, 112))[0].shape == (1, 128, 4, 4)


def test_layer_depth_matches_mmpretrain_rule():
    ours = SwinTransformer(arch='base')
    ref = _ref(arch='base')
    names = [n for n, _ in ours.named_parameters()] + ['head.fc.weight']
    for name in names:
        assert ours.get_layer_depth('backbone.' + name, 'backbone.') == ref.get_layer_depth(
            'backbone.' + name, 'backbone.'
        ), name
    # the table of reference §4.2 for Swin-B (depths 2, 2, 18, 2; 26 layers)
    depth = lambda name: ours.get_layer_depth('backbone.' + name, 'backbone.')  # noqa: E731
    assert depth('patch_embed.projection.weight') == (0, 26)
    assert depth('stages.0.blocks.0.norm1.weight') == (1, 26)
    assert depth('stages.0.downsample.reduction.weight') == (2, 26)
    assert depth('stages.1.blocks.1.ffn.layers.1.weight') == (4, 26)
    assert depth('stages.1.downsample.norm.weight') == (4, 26)
    assert depth('stages.2.blocks.3.attn.w_msa.qkv.weight') == (2 + 2 + 3 + 1, 26)
    assert depth('stages.2.downsample.reduction.weight') == (22, 26)
    assert depth('stages.3.blocks.1.attn.w_msa.relative_position_bias_table') == (24, 26)
    assert depth('norm3.weight') == depth('absolute_pos_embed') == (25, 26)
    assert ours.get_layer_depth('head.fc.weight', 'backbone.') == (25, 26)


@pytest.mark.parametrize('type_name', ['SwinTransformer', 'SimMIMSwinTransformer'])
def test_contract_tiny_arch(type_name):
    m = MODELS.build(
        dict(type=type_name, arch='test', img_size=64, window_size=2, out_indices=(0, 3), use_abs_pos_embed=True)
    )
    m.init_weights()
    assert m.embed_dims == 16 and m.out_indices == (0, 3)
    outs = m(torch.randn(2, 3, 64, 64))
    assert [o.shape for o in outs] == [(2, 16, 16, 16), (2, 128, 2, 2)]
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()  # a plain sum is constant after LayerNorm
    no_grad = [n for n, p in m.named_parameters() if n != 'mask_token' and (p.grad is None or not p.grad.any())]
    assert not no_grad
    nwd = m.no_weight_decay()
    assert {'absolute_pos_embed', 'stages.0.blocks.0.attn.w_msa.relative_position_bias_table'} <= nwd
    assert len([n for n in nwd if n.endswith('bias_table')]) == sum(m.depths)
    assert all(m.get_layer_depth(n)[0] < m.get_layer_depth(n)[1] for n, _ in m.named_parameters())


def test_frozen_stages():
    m = SwinTransformer(arch='test', img_size=64, window_size=2, out_indices=(0, 1, 3), frozen_stages=1)
    m.train()
    frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
    expected = {
        n for n, _ in m.named_parameters() if n.startswith(('patch_embed', 'stages.0', 'stages.1', 'norm0', 'norm1'))
    }
    assert frozen == expected
    assert not m.stages[1].training and m.stages[2].training


def test_pretrained_init_cfg_is_not_overwritten(tmp_path):
    src = SwinTransformer(arch='test', img_size=64, window_size=2)
    src.init_weights()
    path = tmp_path / 'swin.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in src.state_dict().items()}}, path)
    m = SwinTransformer(
        arch='test',
        img_size=64,
        window_size=2,
        init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'),
    )
    m.init_weights()
    m.init_weights()  # a second call must not re-draw
    for k, v in src.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k


def test_errors():
    attn = ShiftWindowMSA(8, 1, 7, True, True, 0.0, 0.0, pad_small_map=False)
    with pytest.raises(ValueError, match='smaller than the window'):
        attn(torch.randn(1, 25, 8), (5, 5))
    with pytest.raises(KeyError, match='unknown Swin arch'):
        SwinTransformer(arch='huge')
    with pytest.raises(ValueError, match='out_indices'):
        SwinTransformer(arch='test', out_indices=(4,))
