"""Loading foreign and broken checkpoints, and the release tools."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import save_checkpoint

from mimlab.registry import MODELS
from mimlab.utils.checkpoint import load_model_weights
from tests.helpers import tiny_mae

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    'config',
    [
        'mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
        'simmim/simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py',
    ],
)
def test_checkpoints_written_by_mmpretrain_load_strictly(config, tmp_path):
    import mmpretrain
    from mmpretrain.registry import MODELS as PT_MODELS

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ref = PT_MODELS.build(Config.fromfile(f'{mmpretrain.__path__[0]}/.mim/configs/{config}').model)
        ref.init_weights()
    path = tmp_path / 'ref.pth'
    save_checkpoint({'meta': {'mmpretrain_version': mmpretrain.__version__}, 'state_dict': ref.state_dict()}, str(path))
    ours = MODELS.build(Config.fromfile(str(ROOT / 'configs' / config)).model)
    load_model_weights(ours, str(path), strict=True)
    for key, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key


def test_bad_checkpoints_say_what_does_not_fit(tmp_path):
    model = tiny_mae()
    state = model.state_dict()
    missing = dict(state)
    missing.pop('neck.decoder_pred.bias')
    torch.save({'state_dict': missing}, tmp_path / 'missing.pth')
    with pytest.raises(RuntimeError, match=r'(?s)missing\.pth does not fit MAE.*neck\.decoder_pred\.bias'):
        load_model_weights(model, str(tmp_path / 'missing.pth'))
    shape = dict(state)
    shape['neck.decoder_embed.weight'] = torch.zeros(3, 3)
    shape['extra.weight'] = torch.zeros(1)
    torch.save({'state_dict': shape}, tmp_path / 'shape.pth')
    with pytest.raises(RuntimeError, match=r'(?s)extra\.weight.*size mismatch for neck\.decoder_embed\.weight'):
        load_model_weights(model, str(tmp_path / 'shape.pth'))
    (tmp_path / 'notes.txt').write_text('not a checkpoint')
    with pytest.raises(RuntimeError, match='notes.txt'):
        load_model_weights(model, str(tmp_path / 'notes.txt'))
    torch.save([1, 2, 3], tmp_path / 'list.pth')
    with pytest.raises(TypeError, match='list.pth is not a checkpoint'):
        load_model_weights(model, str(tmp_path / 'list.pth'))


def test_extract_backbone_and_publish_tools(tmp_path):
    model = tiny_mae()
    src = tmp_path / 'epoch_1.pth'
    torch.save({'meta': {'epoch': 1}, 'state_dict': model.state_dict(), 'optimizer': {'state': {}}}, src)
    run = dict(cwd=ROOT, capture_output=True, text=True, check=True)
    subprocess.run(
        [
            sys.executable,
            'tools/model_converters/extract_backbone_weights.py',
            str(src),
            str(tmp_path / 'backbone.pth'),
        ],
        **run,
    )
    backbone = torch.load(tmp_path / 'backbone.pth', weights_only=True)['state_dict']
    assert backbone.keys() == model.backbone.state_dict().keys()
    out = subprocess.run(
        [sys.executable, 'tools/model_converters/publish_model.py', str(src), str(tmp_path / 'mae_tiny.pth')], **run
    ).stdout
    published = next(tmp_path.glob('mae_tiny-*.pth'))
    assert published.name in out
    assert published.stem.split('-')[-1] == hashlib.sha256(published.read_bytes()).hexdigest()[:8]
    ckpt = torch.load(published, weights_only=True)
    assert set(ckpt) == {'meta', 'state_dict'}
