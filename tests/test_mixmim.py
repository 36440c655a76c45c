"""MixMIM: parity with mmpretrain 1.2.0 (keys, mask draws, loss), the mixing math (no leakage between the paired
images, every token reconstructed once), the official layer-decay rule, official-checkpoint conversion both ways."""

import random

import pytest
import torch
from mmengine.registry import DefaultScope

from mimlab.converters.auto import FAMILIES, detect_source, import_checkpoint, to_timm
from mimlab.converters.mixmim import mixmim_from_official, mixmim_to_official
from mimlab.models.algorithms.mixmim import MixMIMPretrainHead, MixMIMPretrainTransformer
from mimlab.models.backbones.mixmim import MixMIMTransformer
from mimlab.registry import MODELS

ARCH = dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 2, 2])
IMG, WINDOWS = 128, [8, 8, 4, 4]  # 32/16/8/4 grids: two or four windows per image in stages 1-3, 4x4 output cells
HEAD = dict(type='MixMIMPretrainHead', norm_pix=True, loss=dict(type='PixelReconstructionLoss', criterion='L2'))


def build_ours(norm_eps=1e-6):
    return MODELS.build(
        dict(
            type='MixMIM',
            backbone=dict(type='MixMIMPretrainTransformer', arch=ARCH, img_size=IMG, window_size=WINDOWS),
            neck=dict(
                type='MixMIMPretrainDecoder',
                decoder_embed_dims=32,
                decoder_depth=2,
                decoder_num_heads=4,
                norm_eps=norm_eps,
            ),
            head=HEAD,
        )
    )


def randomise(model: torch.nn.Module) -> dict:
    """Give every parameter non-trivial values (the inits leave bias tables at 0 and LayerNorms at 1)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'pos_embed' not in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.state_dict()


@pytest.fixture(scope='module')
def pair():
    import mmpretrain.models  # noqa: F401  (registers mmpretrain's modules)
    from mmpretrain.registry import MODELS as PT_MODELS

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ref = PT_MODELS.build(
            dict(
                type='MixMIM',
                backbone=dict(type='MixMIMPretrainTransformer', arch=ARCH, img_size=IMG, window_size=WINDOWS),
                neck=dict(
                    type='MixMIMPretrainDecoder',
                    num_patches=(IMG // 32) ** 2,
                    encoder_stride=32,
                    embed_dim=128,
                    decoder_embed_dim=32,
                    decoder_depth=2,
                    decoder_num_heads=4,
                ),
                head=dict(HEAD),
            )
        )
    ref.init_weights()
    ours = build_ours()  # mmpretrain's decoder LayerNorms use eps 1e-6 (the official 1e-5 is mimlab's default)
    ours.init_weights()
    return ref, ours


def test_keys_and_shapes_equal_mmpretrain(pair):
    ref, ours = pair
    theirs, mine = ref.state_dict(), ours.state_dict()
    assert set(theirs) == set(mine)
    assert {k: tuple(v.shape) for k, v in theirs.items()} == {k: tuple(v.shape) for k, v in mine.items()}


def test_loss_and_gradients_equal_mmpretrain(pair):
    ref, ours = pair
    ours.load_state_dict(randomise(ref), strict=True)
    x = torch.randn(4, 3, IMG, IMG)
    for seed in range(3):
        torch.manual_seed(seed)
        random.seed(seed)
        ref.zero_grad()
        a = ref.loss(x, None)['loss']
        a.backward()
        torch.manual_seed(seed)
        random.seed(seed)
        ours.zero_grad()
        b = ours.loss(x, None)['loss']
        b.backward()
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (seed, a.item(), b.item())
        grads = dict(ref.named_parameters())
        for name, p in ours.named_parameters():
            if p.grad is not None:
                torch.testing.assert_close(p.grad, grads[name].grad, atol=1e-5, rtol=1e-4, msg=name)


def test_plain_encoder_equals_mmpretrain_classifier_backbone():
    from mmpretrain.models.backbones import MixMIMTransformer as Ref

    ref = Ref(arch=ARCH, img_size=IMG, window_size=WINDOWS)
    ref.eval()  # (mmpretrain's train() returns None)
    ours = MixMIMTransformer(arch=ARCH, img_size=IMG, window_size=WINDOWS).eval()
    ours.load_state_dict(randomise(ref), strict=True)
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], ref(x)[0], atol=1e-5, rtol=1e-5)


def test_mask_draw_at_224_equals_mmpretrain():
    from mmpretrain.models.selfsup.mixmim import MixMIMPretrainTransformer as Ref

    ours = MixMIMPretrainTransformer(arch='test')  # the published windows 14/14/14/7 at 224 px
    ref = Ref(arch=ARCH)
    x = torch.zeros(2, 3, 224, 224)
    torch.manual_seed(3)
    random.seed(3)
    masks = ours.random_masking(x)
    torch.manual_seed(3)
    random.seed(3)
    ref_masks = ref.random_masking(x, 0.5)
    assert [tuple(m.shape) for m in masks] == [(1, 3136, 1), (1, 784, 1), (1, 196, 1), (1, 49, 1)]
    assert masks[-1].sum() == 24  # int(49 * 0.5) cells from the partner, 25 own
    for m, r in zip(masks, ref_masks, strict=True):
        assert torch.equal(m, r)
    # each 32-px cell is one source at every stage: nearest upsampling of the 7x7 mask
    cells = masks[-1].reshape(1, 1, 7, 7)
    assert torch.equal(masks[0].reshape(56, 56), cells.repeat_interleave(8, 2).repeat_interleave(8, 3)[0, 0])


def test_paired_images_do_not_leak_into_each_other():
    torch.manual_seed(0)
    enc = MixMIMPretrainTransformer(arch=ARCH, img_size=IMG, window_size=WINDOWS).eval()
    randomise(enc)
    x = torch.randn(4, 3, IMG, IMG)
    y = x.clone()
    y[0] += torch.randn_like(y[0])  # image 0 is the partner of image 3
    with torch.no_grad():
        torch.manual_seed(1)
        a, mask = enc.forward_mixed(x)
        torch.manual_seed(1)
        b, mask_b = enc.forward_mixed(y)
    assert torch.equal(mask, mask_b)
    own, lent = mask[0, :, 0] == 0, mask[0, :, 0] == 1
    # sample 3 holds its own tokens where mask = 0 and image 0's where mask = 1; image 0 changed
    torch.testing.assert_close(a[3][own], b[3][own], atol=1e-5, rtol=0)
    assert (a[3][lent] - b[3][lent]).abs().max() > 1e-2
    # sample 0 holds image 0's own tokens where mask = 0 and image 3's (unchanged) where mask = 1
    torch.testing.assert_close(a[0][lent], b[0][lent], atol=1e-5, rtol=0)
    assert (a[0][own] - b[0][own]).abs().max() > 1e-2
    # the untouched pair (1, 2) is unaffected everywhere
    torch.testing.assert_close(a[1:3], b[1:3], atol=1e-5, rtol=0)


def test_unmix_reconstructs_every_token_of_every_image_once():
    B, L = 4, 6
    mask = torch.tensor([1.0, 0, 0, 1, 1, 0]).reshape(1, L, 1)
    # prediction of branch k (0 own, 1 partner) of sample s for token t: the value 100 k + 10 s + t
    pred = torch.tensor([[[100 * k + 10 * s + t] for t in range(L)] for k in range(2) for s in range(B)]).float()
    head = MixMIMPretrainHead(loss=dict(type='PixelReconstructionLoss'), patch_size=32)
    out = head.unmix(pred, mask)[..., 0]
    for b in range(B):
        for t in range(L):
            # masked cells: the own branch of b; the rest: the partner branch of the sample that holds b's tokens
            expected = 10 * b + t if mask[0, t, 0] else 100 + 10 * (B - 1 - b) + t
            assert out[b, t] == expected


def test_odd_batch_pairs_the_middle_image_with_itself():
    torch.manual_seed(0)
    model = build_ours()
    model.init_weights()
    loss = model.loss(torch.randn(3, 3, IMG, IMG))['loss']
    assert torch.isfinite(loss)


def test_layer_depth_follows_the_official_rule():
    from mimlab.engine.optimizers.layer_decay import LayerDecayOptimWrapperConstructor

    b = MixMIMTransformer(arch='base')
    depth = lambda n: b.get_layer_depth(n, 'backbone.')  # noqa: E731
    assert depth('backbone.patch_embed.projection.weight') == (0, 26)
    assert depth('backbone.absolute_pos_embed') == (0, 26)
    assert depth('backbone.layers.0.blocks.1.attn.qkv.weight') == (2, 26)
    assert depth('backbone.layers.0.downsample.reduction.weight') == (3, 26)  # with stage 1's first block
    assert depth('backbone.layers.2.blocks.17.ln1.weight') == (22, 26)
    assert depth('backbone.layers.2.downsample.norm.weight') == (23, 26)
    assert depth('backbone.layers.3.blocks.1.ffn.layers.1.weight') == (24, 26)
    assert depth('backbone.norm.weight') == (24, 26)
    assert depth('head.fc.weight') == (24, 26)

    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='MixMIMTransformer', arch=ARCH, img_size=IMG, window_size=WINDOWS),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=128),
        )
    )
    ctor = LayerDecayOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05)),
        dict(layer_decay_rate=0.7),
    )
    groups = ctor(model).optimizer.param_groups
    scale = {n: g['lr'] for g in groups for n in g['param_names']}
    total = sum(ARCH['depths'])  # official: scale(id) = 0.7 ** (total + 1 - id)
    assert scale['head.fc.weight'] == pytest.approx(0.7)
    assert scale['backbone.patch_embed.projection.weight'] == pytest.approx(0.7 ** (total + 1))
    assert scale['backbone.layers.1.blocks.1.attn.qkv.weight'] == pytest.approx(0.7 ** (total + 1 - 3))
    decay = {n: g['weight_decay'] for g in groups for n in g['param_names']}
    assert decay['backbone.layers.0.blocks.0.attn.relative_position_bias_table'] == 0.05  # 2-D: decayed
    assert decay['backbone.layers.0.blocks.0.ln1.weight'] == 0.0


def _official_merge_to_mmcv(x: torch.Tensor) -> torch.Tensor:
    """mmpretrain's documented rule (tools/model_converters/mixmim_to_mmpretrain.py) for the 4C axis, as a formula:
    split 4C into (4, C) offset-major blocks, reorder the offsets [0, 2, 1, 3], then interleave channel-major."""
    lead, c = x.shape[:-1], x.shape[-1] // 4
    return x.reshape(*lead, 4, c)[..., [0, 2, 1, 3], :].transpose(-1, -2).reshape(*lead, 4 * c)


def test_official_pretraining_checkpoint_round_trip():
    torch.manual_seed(0)
    ours = build_ours(norm_eps=1e-5)
    ours.init_weights()
    state = randomise(ours)
    official = mixmim_to_official(state)
    for key in (
        'patch_embed.proj.weight',
        'layers.0.blocks.0.norm1.weight',
        'layers.1.blocks.1.mlp.fc2.bias',
        'layers.0.downsample.reduction.weight',
        'absolute_pos_embed',
        'norm.weight',
        'mask_token',
        'decoder_pos_embed',
        'decoder_embed.weight',
        'decoder_blocks.1.norm2.weight',
        'decoder_blocks.0.mlp.fc1.weight',
        'decoder_norm.weight',
        'decoder_pred.weight',
    ):
        assert key in official, key
    for name in ('reduction.weight', 'norm.weight', 'norm.bias'):
        theirs = official[f'layers.1.downsample.{name}']
        torch.testing.assert_close(_official_merge_to_mmcv(theirs), state[f'backbone.layers.1.downsample.{name}'])
    assert detect_source({'model': official}) == 'official-mixmim'
    source, back = import_checkpoint({'model': official})
    assert source == 'official-mixmim' and back.keys() == state.keys()
    for k in state:
        assert torch.equal(back[k], state[k]), k
    fresh = build_ours(norm_eps=1e-5)
    fresh.load_state_dict(back, strict=True)
    with pytest.raises(KeyError, match='unknown keys'):
        mixmim_from_official({**official, 'something.else': torch.zeros(1)})


def test_official_finetuned_checkpoint_loads_into_the_classifier_and_exports_back():
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='MixMIMTransformer', arch=ARCH, img_size=IMG, window_size=WINDOWS),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=128),
        )
    )
    state = randomise(model)
    official = mixmim_to_official(state)
    assert 'head.weight' in official and 'mask_token' not in official
    model.load_state_dict(mixmim_from_official(official), strict=True)

    family, exported, backbone = to_timm({'state_dict': state})
    assert family == 'mixmim' and exported.keys() == official.keys()
    assert FAMILIES['mixmim'].compare(backbone, exported) < 1e-6


def test_checkpoint_of_another_size_loads_with_resized_tables():
    small = MixMIMTransformer(arch=ARCH, img_size=64, window_size=[8, 8, 4, 2])
    small.init_weights()
    big = MixMIMTransformer(arch=ARCH, img_size=96, window_size=[12, 12, 6, 3])
    big.load_state_dict(randomise(small), strict=True)
    assert big.layers[0].blocks[0].attn.relative_position_bias_table.shape == (23 * 23, 1)
    assert big.absolute_pos_embed.shape == (1, 24 * 24, 16)
    assert big(torch.randn(1, 3, 96, 96))[0].shape == (1, 128)
    with pytest.raises(ValueError, match='img_size'):
        big(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match='whole number'):
        MixMIMTransformer(arch=ARCH, img_size=96, window_size=[14, 14, 14, 7])


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='MixMIM',
            backbone=dict(type='MixMIMPretrainTransformer', arch=ARCH, img_size=64, window_size=[8, 8, 4, 2]),
            neck=dict(type='MixMIMPretrainDecoder', decoder_embed_dims=32, decoder_depth=1, decoder_num_heads=4),
            head=HEAD,
        )
    )
    model.init_weights()
    # smooth images (bicubic upsampling of 4x4 noise): the hidden half of each is predictable from the visible half
    x = torch.nn.functional.interpolate(torch.randn(4, 3, 4, 4), size=(64, 64), mode='bicubic')
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        torch.manual_seed(step % 3)
        loss = model.loss(x)['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:5]) / 5, losses
