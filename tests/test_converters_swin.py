"""Swin into timm and back, and the importers of official Swin / SimMIM / MAE weights."""

import subprocess
import sys

import pytest
import timm
import torch
from timm.models.vision_transformer import Block

from mimlab.converters.auto import detect_source, import_checkpoint, to_timm
from mimlab.converters.swin import swin_from_timm, swin_to_timm
from mimlab.converters.vit import split_checkpoint
from mimlab.models.backbones import SwinTransformer
from mimlab.registry import MODELS

TEST_ARCH = dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 2, 2])


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights everywhere (norms and biases included), so a mix-up of any two tensors shows."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def _features(ours: SwinTransformer, ref, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        return ours(x)[-1].permute(0, 2, 3, 1), ref.forward_features(x)


@pytest.mark.parametrize(
    'window,size,timm_kw', [(7, 224, {}), (6, 192, dict(img_size=192, window_size=6))], ids=['w7-224', 'w6-192']
)
def test_mimlab_swin_base_loads_strictly_into_timm_with_equal_features(window, size, timm_kw):
    ours = _perturbed(SwinTransformer(arch='base', window_size=window, img_size=size, drop_path_rate=0.0))
    ref = timm.create_model('swin_base_patch4_window7_224', pretrained=False, num_classes=0, **timm_kw).eval()
    ref.load_state_dict(swin_to_timm(ours.state_dict()), strict=True)
    a, b = _features(ours, ref, size)
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()


def test_patch_merging_reorder_is_what_makes_features_equal():
    """Renaming alone is not enough: the 4C axis of patch merging has another order in timm."""
    ours = _perturbed(SwinTransformer(arch=TEST_ARCH, drop_path_rate=0.0))
    state = swin_to_timm(ours.state_dict())
    key = 'layers.1.downsample.reduction.weight'
    assert not torch.equal(state[key], ours.state_dict()['stages.0.downsample.reduction.weight'])
    ref = timm.models.swin_transformer.SwinTransformer(
        embed_dim=16, depths=(1, 2, 1, 1), num_heads=(1, 2, 2, 2), num_classes=0
    ).eval()
    ref.load_state_dict(state, strict=True)
    a, b = _features(ours, ref, 224)
    assert torch.allclose(a, b, atol=1e-5)


def test_timm_swin_to_mimlab_to_timm_is_identity():
    ref = timm.create_model('swin_base_patch4_window7_224', pretrained=False, num_classes=10)
    state = ref.state_dict()
    mimlab_state = swin_from_timm(state)
    backbone, head = split_checkpoint(mimlab_state)
    SwinTransformer(arch='base').load_state_dict(backbone, strict=True)  # index buffers rebuilt on load
    back = swin_to_timm(backbone, head)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_unknown_swin_keys_are_listed():
    state = SwinTransformer(arch=TEST_ARCH, out_indices=(2, 3)).state_dict()
    with pytest.raises(KeyError, match=r'norm2\.bias.*norm2\.weight'):
        swin_to_timm(state)


def _simmim(window=6, size=192):
    backbone = dict(type='SimMIMSwinTransformer', arch=TEST_ARCH, img_size=size, window_size=window)
    return MODELS.build(
        dict(type='SimMIM', backbone=backbone, neck=dict(type='SimMIMLinearDecoder'), head=dict(type='SimMIMHead'))
    )


def _official_simmim_layout(ref) -> dict:
    """What microsoft/SimMIM saves for this encoder: the original Swin names (merging at the end of a stage, the
    index and attention-mask buffers included) under ``encoder.``, plus ``encoder.mask_token`` and the decoder."""
    state = {}
    for key, value in ref.state_dict().items():
        if key.startswith('layers.') and '.downsample.' in key:
            s = int(key.split('.')[1])
            key = key.replace(f'layers.{s}.downsample', f'layers.{s - 1}.downsample', 1)
        state['encoder.' + key] = value
    for s, layer in enumerate(ref.layers):
        for b, block in enumerate(layer.blocks):
            n = block.attn.relative_position_bias_table.shape[0]
            state[f'encoder.layers.{s}.blocks.{b}.attn.relative_position_index'] = torch.zeros(n, dtype=torch.long)
            if b % 2:
                state[f'encoder.layers.{s}.blocks.{b}.attn_mask'] = torch.zeros(1)
    state['encoder.mask_token'] = torch.randn(1, 1, 16)
    state['decoder.0.weight'] = torch.randn(32 * 32 * 3, 128, 1, 1)
    state['decoder.0.bias'] = torch.randn(32 * 32 * 3)
    return {'model': state}


def test_official_simmim_checkpoint_imports_into_mimlab_simmim(tmp_path, repo_root):
    ref = _perturbed(
        timm.models.swin_transformer.SwinTransformer(
            img_size=192, window_size=6, embed_dim=16, depths=(1, 2, 1, 1), num_heads=(1, 2, 2, 2), num_classes=0
        )
    )
    official = _official_simmim_layout(ref)
    assert detect_source(official) == 'official-simmim'
    source, state = import_checkpoint(official)
    model = _simmim().eval()
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.backbone.mask_token, official['model']['encoder.mask_token'])
    assert torch.equal(model.neck.decoder[0].weight, official['model']['decoder.0.weight'])
    a, b = _features(model.backbone, ref, 192)
    assert torch.allclose(a, b, atol=1e-5)

    # and the SimMIM checkpoint goes to timm through the tool, leaving mask token and decoder behind
    src, dst = tmp_path / 'simmim.pth', tmp_path / 'timm.pth'
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, src)
    out = subprocess.run(
        [sys.executable, 'tools/model_converters/mmcls2timm.py', str(src), str(dst), '--check'],
        cwd=repo_root,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith('swin:') and 'timm strict load ok' in out.stdout
    converted = torch.load(dst, weights_only=True)['model']
    assert converted.keys() == ref.state_dict().keys()


def test_official_mae_checkpoint_with_decoder_imports_into_mimlab_mae():
    """facebookresearch/mae layout: a timm ViT encoder, ``mask_token``, ``decoder_*`` and timm blocks."""
    enc = timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=0)
    dec = Block(dim=32, num_heads=2, mlp_ratio=4.0, qkv_bias=True)
    official = {k: v for k, v in enc.state_dict().items()}
    official.update({f'decoder_blocks.0.{k}': v for k, v in dec.state_dict().items()})
    official.update(
        {
            'mask_token': torch.randn(1, 1, 32),
            'decoder_pos_embed': torch.randn(1, 197, 32),
            'decoder_embed.weight': torch.randn(32, 192),
            'decoder_embed.bias': torch.randn(32),
            'decoder_norm.weight': torch.randn(32),
            'decoder_norm.bias': torch.randn(32),
            'decoder_pred.weight': torch.randn(768, 32),
            'decoder_pred.bias': torch.randn(768),
        }
    )
    assert detect_source({'model': official}) == 'official-mae'
    _, state = import_checkpoint({'model': official})
    mae = MODELS.build(
        dict(
            type='MAE',
            backbone=dict(type='MAEViT', arch='deit-t'),
            neck=dict(type='MAEPretrainDecoder', decoder_embed_dims=32, decoder_depth=1, decoder_num_heads=2),
            head=dict(type='MAEPretrainHead', norm_pix=True),
        )
    )
    mae.load_state_dict(state, strict=True)
    assert torch.equal(mae.neck.ln1.weight, official['decoder_norm.weight'])
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        assert torch.allclose(mae.neck.decoder_blocks[0](x), dec.eval()(x), atol=1e-5)


def test_encoder_only_official_mae_and_unknown_keys():
    enc = timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=0).state_dict()
    source, state = import_checkpoint({'model': enc}, 'official-mae')
    assert all(k.startswith('backbone.') for k in state)
    with pytest.raises(KeyError, match='decoder_mystery'):
        import_checkpoint({'model': {**enc, 'decoder_mystery.weight': torch.zeros(1)}}, 'official-mae')


def test_to_timm_rejects_a_file_that_is_no_known_backbone():
    with pytest.raises(KeyError, match='cannot tell the backbone family'):
        to_timm({'state_dict': {'backbone.foo.weight': torch.zeros(1)}})


def test_import_tool_official_mae_finetuned_needs_trusted_and_loads_into_the_finetune_config(tmp_path, repo_root):
    """The official MAE fine-tuning files pickle their argparse args: refused by default, imported with --trusted,
    and the result loads strictly into a mimlab fine-tuning recipe (avg pool + fc_norm, no final norm; the demo's
    small ViT here, the ViT-B recipe has the same layout)."""
    import argparse

    from timm.models.vision_transformer import VisionTransformer as TimmViT

    ref = TimmViT(
        img_size=32, patch_size=4, embed_dim=96, depth=4, num_heads=3, global_pool='avg', fc_norm=True, num_classes=10
    )
    src, dst = tmp_path / 'checkpoint-99.pth', tmp_path / 'mimlab.pth'
    torch.save({'model': ref.state_dict(), 'epoch': 99, 'args': argparse.Namespace(lr=1e-3)}, src)
    cmd = [sys.executable, 'tools/model_converters/import_weights.py', str(src), str(dst)]
    refused = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True)
    assert refused.returncode != 0 and 'weights-only' in refused.stderr and '--trusted' in refused.stderr
    assert not dst.exists()
    config = 'configs/demo/vit-test-p4_ft-1xb128-coslr-10e_builtin-32px.py'
    ok = subprocess.run(cmd + ['--trusted', '--check', config], cwd=repo_root, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert '\ntimm: wrote' in ok.stdout  # no decoder keys: read as the plain timm layout
    assert 'loads strictly into ImageClassifier' in ok.stdout
    state = torch.load(dst, weights_only=True)['state_dict']
    assert torch.equal(state['backbone.ln2.weight'], ref.state_dict()['fc_norm.weight'])
    assert torch.equal(state['head.fc.weight'], ref.state_dict()['head.weight'])
