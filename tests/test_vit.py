"""ViT backbone: the backbone contract, output types, position-table resizing, and parity with mmpretrain."""

import pytest
import torch
from mmengine.registry import DefaultScope

from mimlab.models.backbones import VisionTransformer
from mimlab.registry import MODELS


def _mmpretrain_vit(**kwargs):
    from mmpretrain.models.backbones import VisionTransformer as Ref

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return Ref(**kwargs)


@pytest.mark.parametrize('arch', ['s', 'b', 'l', 'h', 'deit-t'])
def test_arch_zoo_matches_mmpretrain(arch):
    from mmpretrain.models.backbones import VisionTransformer as Ref

    assert VisionTransformer.arch_zoo[arch] == Ref.arch_zoo[arch]


@pytest.mark.parametrize(
    'kwargs',
    [
        dict(arch='deit-t', out_type='cls_token'),
        dict(arch='deit-t', out_type='avg_featmap', layer_scale_init_value=0.1),
        dict(arch='deit-t', out_type='featmap', pre_norm=True, out_indices=(3, 11)),
        dict(arch='deit-t', out_type='raw', img_size=96, patch_size=8),
    ],
)
def test_features_and_keys_equal_mmpretrain(kwargs):
    ours = VisionTransformer(**kwargs)
    ours.init_weights()
    theirs = _mmpretrain_vit(**kwargs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    theirs.load_state_dict(ours.state_dict(), strict=True)
    ours.eval(), theirs.eval()
    size = kwargs.get('img_size', 224)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    assert len(a) == len(b)
    for fa, fb in zip(a, b):
        assert fa.shape == fb.shape
        assert torch.allclose(fa, fb, atol=1e-5), (fa - fb).abs().max()


def test_output_types_shapes():
    x = torch.randn(2, 3, 32, 32)
    shapes = {
        'raw': (2, 17, 32),
        'cls_token': (2, 32),
        'featmap': (2, 32, 4, 4),
        'avg_featmap': (2, 32),
    }
    for out_type, shape in shapes.items():
        m = VisionTransformer(arch='test', img_size=32, patch_size=8, out_type=out_type)
        m.init_weights()
        assert m(x)[0].shape == shape


def test_other_input_size_resizes_pos_embed_on_the_fly():
    m = VisionTransformer(arch='test', img_size=32, patch_size=8, out_type='featmap')
    m.init_weights()
    assert m(torch.randn(1, 3, 48, 64))[0].shape == (1, 32, 6, 8)


def test_loading_checkpoint_of_other_resolution_interpolates_pos_embed():
    src = VisionTransformer(arch='test', img_size=32, patch_size=8)
    src.init_weights()
    dst = VisionTransformer(arch='test', img_size=64, patch_size=8)
    dst.load_state_dict(src.state_dict(), strict=True)
    assert dst.pos_embed.shape == (1, 1 + 64, 32)
    assert torch.equal(dst.pos_embed[:, 0], src.pos_embed[:, 0])  # cls row kept
    # a constant table stays constant under bicubic interpolation
    sd = src.state_dict()
    sd['pos_embed'][:, 1:] = 0.5
    dst.load_state_dict(sd)
    assert torch.allclose(dst.pos_embed[:, 1:], torch.full_like(dst.pos_embed[:, 1:], 0.5), atol=1e-6)


def test_layer_depth_and_no_weight_decay():
    m = VisionTransformer(arch='test', img_size=32, patch_size=8)
    assert m.get_layer_depth('backbone.cls_token', 'backbone.') == (0, 4)
    assert m.get_layer_depth('backbone.patch_embed.projection.weight', 'backbone.') == (0, 4)
    assert m.get_layer_depth('backbone.layers.1.attn.qkv.weight', 'backbone.') == (2, 4)
    assert m.get_layer_depth('backbone.ln1.weight', 'backbone.') == (3, 4)
    assert m.get_layer_depth('head.fc.weight', 'backbone.') == (3, 4)
    assert m.no_weight_decay() == {'pos_embed', 'cls_token'}


def test_drop_path_and_frozen_stages():
    m = VisionTransformer(arch='test', img_size=32, patch_size=8, drop_path_rate=0.1, frozen_stages=1)
    m.init_weights()
    m.train()
    assert not m.patch_embed.training and not m.layers[0].training and m.layers[1].training
    assert not any(p.requires_grad for p in m.layers[0].parameters())
    assert all(p.requires_grad for p in m.layers[1].parameters())


def test_registered_and_unknown_arch_error():
    assert MODELS.get('VisionTransformer') is VisionTransformer
    with pytest.raises(KeyError, match='unknown ViT arch'):
        VisionTransformer(arch='nope')


@pytest.mark.parametrize('rel_pos', [False, True])
def test_block_outputs_for_a_subset_of_queries(rel_pos):
    # query_index: keys and values from every token, outputs (and their gradients) for the chosen ones only
    from mimlab.models.layers import TransformerEncoderLayer, gather_tokens

    torch.manual_seed(0)
    block = TransformerEncoderLayer(32, 4, 64, rel_pos_grid=(3, 3) if rel_pos else None)
    if rel_pos:
        torch.nn.init.normal_(block.attn.relative_position_bias_table, std=0.5)
    x = torch.randn(2, 10, 32, requires_grad=True)
    index = torch.tensor([[1, 4, 9], [0, 2, 3]])
    full = gather_tokens(block(x), index)
    sub = block(x, query_index=index)
    assert sub.shape == (2, 3, 32)
    assert torch.allclose(sub, full, atol=1e-6)
    g = torch.randn_like(sub)
    expected = torch.autograd.grad(full, [x, *block.parameters()], g)
    got = torch.autograd.grad(sub, [x, *block.parameters()], g)
    for a, b in zip(got, expected, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
