"""ViT checkpoints into timm and back: strict loads and identical features."""

import subprocess
import sys

import pytest
import timm
import torch

from mimlab.converters import split_checkpoint, vit_from_timm, vit_to_timm
from mimlab.models.backbones import VisionTransformer


@pytest.mark.parametrize('arch,timm_name', [('b', 'vit_base_patch16_224'), ('l', 'vit_large_patch16_224')])
def test_mimlab_vit_loads_strictly_into_timm_with_equal_features(arch, timm_name):
    torch.manual_seed(0)
    ours = VisionTransformer(arch=arch, out_type='raw').eval()
    ours.init_weights()
    ref = timm.create_model(timm_name, pretrained=False, num_classes=0).eval()
    ref.load_state_dict(vit_to_timm(ours.state_dict()), strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(ours(x)[0], ref.forward_features(x), atol=1e-4)


def test_avg_pool_layerscale_and_head_variant():
    ours = VisionTransformer(arch='deit-s', out_type='avg_featmap', final_norm=False, layer_scale_init_value=0.1)
    ours.init_weights()
    ours.eval()
    head = {'head.fc.weight': torch.randn(7, 384), 'head.fc.bias': torch.randn(7)}
    ref = timm.create_model(
        'vit_small_patch16_224', pretrained=False, num_classes=7, global_pool='avg', fc_norm=True, init_values=0.1
    ).eval()
    ref.load_state_dict(vit_to_timm(ours.state_dict(), head), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        logits = ours(x)[0] @ head['head.fc.weight'].T + head['head.fc.bias']
        assert torch.allclose(logits, ref(x), atol=1e-4)


def test_timm_to_mimlab_to_timm_is_identity():
    ref = timm.create_model('vit_base_patch16_224', pretrained=False)
    state = ref.state_dict()
    mimlab_state = vit_from_timm(state)
    backbone, head = split_checkpoint(mimlab_state)
    back = vit_to_timm(backbone, head)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)
    # and the mimlab side loads strictly into mimlab's ViT
    VisionTransformer(arch='b', out_type='cls_token').load_state_dict(backbone, strict=True)


def test_unknown_keys_are_listed():
    with pytest.raises(KeyError, match='mask_token'):
        vit_to_timm({'cls_token': torch.zeros(1), 'mask_token': torch.zeros(1)})


def test_mmcls2timm_tool_on_an_mae_checkpoint(tmp_path, repo_root):
    from mimlab.registry import MODELS

    # an arch timm knows the head count of (deit-t), at 64 px to stay fast

    mae = MODELS.build(
        dict(
            type='MAE',
            backbone=dict(type='MAEViT', arch='deit-t', img_size=64, patch_size=16),
            neck=dict(type='MAEPretrainDecoder', decoder_embed_dims=32, decoder_depth=1, decoder_num_heads=2),
            head=dict(type='MAEPretrainHead', norm_pix=True),
        )
    )
    mae.init_weights()
    src, dst = tmp_path / 'mae.pth', tmp_path / 'timm.pth'
    torch.save({'meta': {}, 'state_dict': mae.state_dict()}, src)
    out = subprocess.run(
        [sys.executable, 'tools/model_converters/mmcls2timm.py', str(src), str(dst), '--check'],
        cwd=repo_root,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'timm strict load ok' in out.stdout
    converted = torch.load(dst, weights_only=True)['model']
    assert 'blocks.11.mlp.fc2.weight' in converted and not any(k.startswith('decoder') for k in converted)
