"""The model zoo: metafiles, list_models / get_model / inference_model, and the zoo page."""

import argparse
import functools
import http.server
import re
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import save_checkpoint

from mimlab.apis import ModelHub, get_model, inference_model, list_models
from mimlab.datasets.builtin import BuiltinDataset, class_names
from mimlab.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
HUB = ModelHub(ROOT / 'model-index.yml')
PIXMIM = [
    'pixmim_vit-base-p16_8xb512-amp-coslr-300e_in1k',
    'pixmim_vit-base-p16_8xb512-amp-coslr-800e_in1k',
    'vit-base-p16_pixmim-300e-pre_8xb128-coslr-100e_in1k',
    'vit-base-p16_pixmim-300e-pre_8xb2048-linear-coslr-torchvision-transform-90e_in1k',
    'vit-base-p16_pixmim-800e-pre_8xb128-coslr-100e_in1k',
    'vit-base-p16_pixmim-800e-pre_8xb2048-linear-coslr-torchvision-transform-90e_in1k',
]
# a tiny PixMIM (ViT 'test' arch, 32 px) from the published 300e entry
TINY_PIXMIM = dict(
    backbone=dict(arch='test', img_size=32, patch_size=8),
    neck=dict(decoder_embed_dims=16, decoder_depth=1, decoder_num_heads=2),
    target_generator=dict(img_size=32, radius=6),
)
DEMO_FT = str(ROOT / 'configs/demo/vit-test-p4_ft-1xb128-coslr-10e_builtin-32px.py')


def _top1(info) -> float:
    return info.results[0]['Metrics']['Top 1 Accuracy']


# ----------------------------------------------------------------- metafiles
def test_metafiles_parse_and_every_config_loads():
    index = yaml.safe_load((ROOT / 'model-index.yml').read_text())
    assert sorted(index['Import']) == [
        'configs/a2mim/metafile.yml',
        'configs/mae/metafile.yml',
        'configs/mixmim/metafile.yml',
        'configs/pixmim/metafile.yml',
        'configs/simmim/metafile.yml',
    ]
    raw_names = [m['Name'] for f in index['Import'] for m in yaml.safe_load((ROOT / f).read_text())['Models']]
    assert len(raw_names) == len(set(raw_names)) == len(HUB.models) == 73
    loaded = {}
    for name, info in HUB.models.items():
        assert Path(info.config).is_file(), f'{name}: {info.config}'
        assert info.config.startswith(str(ROOT / 'configs')), name
        if info.config not in loaded:
            loaded[info.config] = Config.fromfile(info.config)
        assert loaded[info.config].default_scope == 'mimlab'
        for down in info.downstream:
            assert down in HUB.models, f'{name} -> {down}'
        if info.weights is not None:
            openmmlab = r'https://download\.openmmlab\.com/(mmselfsup/1\.x|mmclassification/v0)/\S+-[0-9a-f]{8}\.pth'
            github = r'https://github\.com/Westlake-AI/(A2MIM|openmixup)/releases/download/a2mim-in1k-weights/\S+\.pth'
            assert re.fullmatch(openmmlab, info.weights) or re.fullmatch(github, info.weights), info.weights
        assert {'Epochs', 'Batch Size', 'Parameters'} <= set(info.metadata), name
        for result in info.results:
            assert result['Task'] == 'Image Classification' and result['Dataset'] == 'ImageNet-1k'
            assert 50 < result['Metrics']['Top 1 Accuracy'] < 90
    for path in {info.metafile for info in HUB.models.values()}:
        for collection in yaml.safe_load(Path(path).read_text())['Collections']:
            assert (ROOT / collection['README']).is_file()


def test_published_numbers_and_urls():
    """Spot checks against the reference tables: PixMIM (mmselfsup README) and SimMIM (mmpretrain README)."""
    top1 = {n: _top1(HUB.get(n)) for n in HUB.list_models(task='Image Classification')}
    assert [top1[n] for n in PIXMIM[2:]] == [83.1, 63.3, 83.5, 67.5]
    assert top1['swin-large-w14_simmim-800e-pre_8xb256-coslr-100e_in1k'] == 84.8
    assert top1['vit-base-p16_mae-1600e-pre_8xb2048-linear-coslr-90e_in1k'] == 67.1
    assert HUB.get(PIXMIM[0]).weights.endswith('/pixmim_vit-base-p16_8xb512-amp-coslr-300e_in1k_20230322-3304a88c.pth')
    assert HUB.get(PIXMIM[4]).weights.endswith('/vit-base-p16_ft-8xb128-coslr-100e_in1k_20230322-616b1a7f.pth')
    assert HUB.get('swin-base-w7_simmim-100e-pre_8xb256-coslr-100e_in1k').weights is None  # 'N/A' in the table
    assert HUB.get('simmim_swin-large-w12_16xb128-amp-coslr-800e_in1k-192px').metadata['Epochs'] == 800


def test_metafiles_agree_with_mmpretrain_1_2_0():
    """Every MAE / SimMIM entry that mmpretrain 1.2.0 also publishes has its top-1, FLOPs and (where we list one) its
    weights URL; parameters agree except where mmpretrain's metafile disagrees with its own built model."""
    import mmpretrain

    ref = {}
    for algo in ('mae', 'simmim'):
        meta = yaml.safe_load(Path(mmpretrain.__path__[0], '.mim/configs', algo, 'metafile.yml').read_text())
        ref.update({m['Name']: m for m in meta['Models']})
    ours = HUB.list_models('mae_*') + HUB.list_models('*_mae-*') + HUB.list_models('*simmim*')
    ours = [n for n in ours if not HUB.get(n).metafile.endswith('a2mim/metafile.yml')]  # A2MIM's SimMIM baselines
    assert len(ours) == 29 and set(ours) <= set(ref)
    params_differ = set()
    for name in ours:
        info, theirs = HUB.get(name), ref[name]
        assert info.metadata['FLOPs'] == theirs['Metadata']['FLOPs'], name
        assert info.results == tuple(theirs['Results'] or ()), name
        assert Path(info.config).relative_to(ROOT).as_posix() == theirs['Config'], name
        if info.weights is not None:
            assert info.weights == theirs['Weights'], name
        if info.metadata['Parameters'] != theirs['Metadata']['Parameters']:
            params_differ.add(name)
    # mmpretrain's metafile counts ViT fine-tuning models without the pooled-feature LayerNorm (2 x D parameters)
    # that its own VisionTransformer(out_type='avg_featmap') has; ours counts the built model
    assert params_differ == set(HUB.list_models('vit-*p16_mae-*-coslr-*e_in1k')) - set(HUB.list_models('*linear*'))
    for name in params_differ:
        width = 768 if 'base' in name else 1024
        assert HUB.get(name).metadata['Parameters'] - ref[name]['Metadata']['Parameters'] == 2 * width


def test_mixmim_entries_agree_with_mmpretrain_1_2_0():
    import mmpretrain

    meta = yaml.safe_load(Path(mmpretrain.__path__[0], '.mim/configs/mixmim/metafile.yml').read_text())
    for theirs in meta['Models']:
        info = HUB.get(theirs['Name'])
        assert info.metadata['FLOPs'] == theirs['Metadata']['FLOPs']
        assert info.metadata['Parameters'] == theirs['Metadata']['Parameters']
        assert info.results == tuple(theirs['Results'] or ())
        assert info.weights == theirs['Weights']
        assert Path(info.config).relative_to(ROOT).as_posix() == theirs['Config']


@pytest.mark.parametrize(
    'name',
    [
        'mae_vit-base-p16_8xb512-amp-coslr-300e_in1k',
        'vit-base-p16_pixmim-300e-pre_8xb128-coslr-100e_in1k',
        'vit-base-p16_pixmim-800e-pre_8xb2048-linear-coslr-torchvision-transform-90e_in1k',
        'simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px',
        'swin-base-w7_simmim-100e-pre_8xb256-coslr-100e_in1k',
        'mixmim_mixmim-base_16xb128-coslr-300e_in1k',
        'mixmim-base_mixmim-pre_8xb128-coslr-100e_in1k',
        'a2mim_resnet50-l3_8xb256-coslr-300e_in1k',
    ],
)
def test_parameter_counts_are_those_of_the_built_models(name):
    cfg = Config.fromfile(HUB.get(name).config)
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) == HUB.get(name).metadata['Parameters']


def test_duplicate_names_and_bad_entries_name_the_metafile(tmp_path):
    entry = dict(Name='a', Config='x.py', **{'In Collection': 'C'})
    meta = dict(Collections=[dict(Name='C')], Models=[entry, entry])
    (tmp_path / 'm.yml').write_text(yaml.safe_dump(meta))
    (tmp_path / 'model-index.yml').write_text(yaml.safe_dump(dict(Import=['m.yml'])))
    with pytest.raises(ValueError, match=r"m\.yml: model name 'a' is also defined"):
        ModelHub(tmp_path / 'model-index.yml')
    meta['Models'] = [dict(Name='b', **{'In Collection': 'C'})]
    (tmp_path / 'm.yml').write_text(yaml.safe_dump(meta))
    with pytest.raises(ValueError, match=r"m\.yml: Models\[0\] \(b\) lacks \['Config'\]"):
        ModelHub(tmp_path / 'model-index.yml')
    (tmp_path / 'model-index.yml').write_text(yaml.safe_dump(dict(Import=['gone.yml'])))
    with pytest.raises(FileNotFoundError, match='gone.yml'):
        ModelHub(tmp_path / 'model-index.yml')


# ---------------------------------------------------------------- list_models
def test_list_models():
    assert list_models('*pixmim*') == PIXMIM
    assert list_models('pixmim_*', task='null') == PIXMIM[:2]
    assert list_models('*pixmim*', task='Image Classification') == PIXMIM[2:]
    pretrain = list_models(task='null')
    assert len(pretrain) == 35 and all(
        not HUB.get(n).results and n.split('_')[0] in {'mae', 'pixmim', 'simmim', 'a2mim', 'mixmim'} for n in pretrain
    )
    assert sorted(pretrain + list_models(task='Image Classification')) == list_models()
    assert len(list_models('a2mim_*', task='null')) == 10
    assert list_models('*mixmim*', task='Image Classification') == [
        'mixmim-base_3rdparty_in1k',
        'mixmim-base_mixmim-600e-pre_8xb128-coslr-100e_in1k',
        'mixmim-base_mixmim-pre_8xb128-coslr-100e_in1k',
    ]


# ------------------------------------------------------------------ get_model
def test_get_model_loads_a_local_checkpoint_strictly(tmp_path):
    torch.manual_seed(0)
    source = get_model(PIXMIM[0], **TINY_PIXMIM)
    assert type(source).__name__ == 'PixMIM' and not source.training
    assert source.backbone.embed_dims == 32 and source.target_generator.low_pass_filter.shape == (3, 32, 32)
    path = tmp_path / 'pixmim_tiny.pth'
    save_checkpoint({'meta': {'epoch': 300}, 'state_dict': source.state_dict()}, str(path))

    torch.manual_seed(1)
    fresh = get_model(PIXMIM[0], **TINY_PIXMIM)
    torch.manual_seed(1)
    loaded = get_model(PIXMIM[0], pretrained=str(path), **TINY_PIXMIM)
    assert not torch.equal(fresh.backbone.layers[0].attn.qkv.weight, source.backbone.layers[0].attn.qkv.weight)
    reference = source.state_dict()
    assert loaded.state_dict().keys() == reference.keys()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, reference[key]), key
    assert loaded.cfg.model.backbone.arch == 'test' and loaded.cfg.model.type == 'PixMIM'


def test_get_model_with_a_wrong_checkpoint_says_what_does_not_fit(tmp_path):
    other = get_model(DEMO_FT, head=dict(num_classes=5))
    path = tmp_path / 'five_classes.pth'
    torch.save({'state_dict': other.state_dict()}, path)
    with pytest.raises(
        RuntimeError, match=r'(?s)five_classes\.pth does not fit ImageClassifier.*size mismatch for head'
    ):
        get_model(DEMO_FT, pretrained=str(path))
    (tmp_path / 'notes.txt').write_text('not a checkpoint')
    with pytest.raises(RuntimeError, match='notes.txt'):
        get_model(DEMO_FT, pretrained=str(tmp_path / 'notes.txt'))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        get_model(DEMO_FT, pretrained=str(tmp_path / 'missing.pth'))


@pytest.fixture
def http_dir(tmp_path, monkeypatch):
    """A folder served over HTTP on localhost, and torch hub's cache redirected to a temporary folder."""
    serve = tmp_path / 'www'
    serve.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(serve))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield serve, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    thread.join()
    server.server_close()


def _demo_index(tmp_path, weights: str) -> Path:
    meta = dict(
        Collections=[dict(Name='Demo')],
        Models=[dict(Name='demo-ft', Config=DEMO_FT, Weights=weights, **{'In Collection': 'Demo'})],
    )
    (tmp_path / 'metafile.yml').write_text(yaml.safe_dump(meta))
    (tmp_path / 'model-index.yml').write_text(yaml.safe_dump(dict(Import=['metafile.yml'])))
    return tmp_path / 'model-index.yml'


def test_get_model_pretrained_true_downloads_the_metafile_weights(tmp_path, http_dir):
    """pretrained=True fetches the entry's Weights URL (a real HTTP download from localhost), unpickles it
    weights-only and loads it strictly; a download with a pickled non-tensor object is refused."""
    serve, base = http_dir
    torch.manual_seed(0)
    source = get_model(DEMO_FT)
    save_checkpoint(
        {'meta': {'epoch': 10}, 'state_dict': source.state_dict()}, str(serve / 'demo-ft_20240101-0a1b2c3d.pth')
    )
    hub = ModelHub(_demo_index(tmp_path, f'{base}/demo-ft_20240101-0a1b2c3d.pth'))
    torch.manual_seed(1)
    loaded = hub.get_model('demo-ft', pretrained=True)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert (tmp_path / 'torch_home/hub/checkpoints/demo-ft_20240101-0a1b2c3d.pth').is_file()
    # the process-wide allow-list is left as it was: a full mmengine checkpoint still loads weights-only afterwards
    # (a `safe_globals` context here once removed the types on exit, breaking a later resume in the same process)
    save_checkpoint(
        {'meta': {'epoch': 1}, 'message_hub': {'log_scalars': {'loss': HistoryBuffer([1.0], [1])}}},
        str(tmp_path / 'full.pth'),
    )
    assert 'loss' in torch.load(tmp_path / 'full.pth', weights_only=True)['message_hub']['log_scalars']

    torch.save({'state_dict': source.state_dict(), 'args': argparse.Namespace(lr=1.0)}, serve / 'unsafe.pth')
    hub = ModelHub(_demo_index(tmp_path, f'{base}/unsafe.pth'))
    with pytest.raises(
        RuntimeError, match=r'(?s)cannot load checkpoint http://127\.0\.0\.1:\d+/unsafe\.pth.*Namespace'
    ):
        hub.get_model('demo-ft', pretrained=True)


def test_get_model_converts_weights_published_in_another_layout(tmp_path, http_dir):
    """An entry with 'Weights Layout' (A2MIM's openmixup checkpoints, official MixMIM ones) is converted on loading."""
    from mimlab.converters.a2mim import a2mim_to_openmixup

    serve, base = http_dir
    config = str(ROOT / 'configs/demo/a2mim_resnet-test-l3_1xb64-coslr-10e_builtin-64px.py')
    torch.manual_seed(0)
    source = get_model(config)
    torch.save({'state_dict': a2mim_to_openmixup(source.state_dict())}, serve / 'openmixup.pth')
    entry = dict(Name='a2mim-demo', Config=config, Weights=f'{base}/openmixup.pth', **{'In Collection': 'Demo'})
    entry['Metadata'] = {'Weights Layout': 'openmixup-a2mim'}
    (tmp_path / 'metafile.yml').write_text(yaml.safe_dump(dict(Collections=[dict(Name='Demo')], Models=[entry])))
    (tmp_path / 'model-index.yml').write_text(yaml.safe_dump(dict(Import=['metafile.yml'])))
    loaded = ModelHub(tmp_path / 'model-index.yml').get_model('a2mim-demo', pretrained=True)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_get_model_errors():
    with pytest.raises(
        ValueError,
        match=r"unknown model 'pixmim_vit-base-p16_8xb512-amp-coslr-300e'.*did you mean "
        r'pixmim_vit-base-p16_8xb512-amp-coslr-300e_in1k',
    ):
        get_model('pixmim_vit-base-p16_8xb512-amp-coslr-300e')
    with pytest.raises(ValueError, match='vit-base-p16_mae-400e-pre_8xb128-coslr-100e_in1k has no released weights'):
        get_model('vit-base-p16_mae-400e-pre_8xb128-coslr-100e_in1k', pretrained=True)
    with pytest.raises(FileNotFoundError, match='nowhere.py'):
        get_model('configs/nowhere.py')


# ------------------------------------------------------------ inference_model
@pytest.fixture(scope='module')
def demo_classifier():
    torch.manual_seed(0)
    model = get_model(DEMO_FT)
    with torch.no_grad():  # a head that is not near-uniform, so the prediction depends on the image
        model.head.fc.weight.normal_(0, 0.5)
    return model


def test_inference_model_on_a_jpeg(demo_classifier, tmp_path):
    model = demo_classifier
    img, _ = BuiltinDataset(split='val', img_size=32).render(7)  # (32, 32, 3) uint8 BGR
    path = tmp_path / 'shape.jpg'
    assert cv2.imwrite(str(path), img)
    out = inference_model(model, str(path))
    assert set(out) == {'pred_label', 'pred_score', 'pred_class', 'pred_scores'}
    assert out['pred_scores'].shape == (10,) and abs(out['pred_scores'].sum() - 1) < 1e-5
    assert out['pred_label'] == int(out['pred_scores'].argmax()) and out['pred_score'] == out['pred_scores'].max()
    assert out['pred_class'] == class_names(10)[out['pred_label']]

    # the same numbers as the model applied by hand to the decoded file (the test pipeline is identity at 32 px)
    decoded = cv2.imread(str(path))
    x = torch.from_numpy(decoded).permute(2, 0, 1)[None]  # (H, W, 3) -> (1, 3, H, W) uint8 BGR
    with torch.no_grad():
        inputs = model.data_preprocessor(dict(inputs=x))['inputs']
        expected = model.head(model.extract_feat(inputs)).softmax(-1)[0]
    np.testing.assert_allclose(out['pred_scores'], expected.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(inference_model(model, decoded)['pred_scores'], out['pred_scores'])


def test_inference_model_with_an_imagenet_test_pipeline(tmp_path):
    """A zoo fine-tune entry (tiny ViT at 224 px): LoadImageFromFile -> ResizeEdge(256) -> CenterCrop(224)."""
    torch.manual_seed(0)
    model = get_model(PIXMIM[2], backbone=dict(arch='test'), head=dict(in_channels=32))
    img = (np.random.default_rng(0).random((200, 300, 3)) * 255).astype(np.uint8)
    path = tmp_path / 'wide.jpg'
    assert cv2.imwrite(str(path), img)
    out = inference_model(model, path)
    assert out['pred_scores'].shape == (1000,) and 'pred_class' not in out  # ImageNet's names are not shipped
    np.testing.assert_array_equal(inference_model(model, cv2.imread(str(path)))['pred_scores'], out['pred_scores'])


def test_inference_model_errors(demo_classifier, tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.jpg'):
        inference_model(demo_classifier, str(tmp_path / 'nothing.jpg'))
    with pytest.raises(ValueError, match=r'\(H, W, 3\) uint8.*\(32, 32\)'):
        inference_model(demo_classifier, np.zeros((32, 32), np.uint8))
    pretrain = get_model(PIXMIM[0], **TINY_PIXMIM)
    with pytest.raises(TypeError, match='PixMIM is not a classifier'):
        inference_model(pretrain, np.zeros((32, 32, 3), np.uint8))


# ------------------------------------------------------------- import, docs
def test_import_mimlab_stays_light_and_exports_the_api():
    code = (
        'import sys, mimlab; assert "torch" not in sys.modules, "import mimlab imported torch"; '
        'assert "mimlab.apis" not in sys.modules; print(mimlab.list_models("*simmim*", task="null"))'
    )
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert 'simmim_swin-large-w12_16xb128-amp-coslr-800e_in1k-192px' in out


def test_zoo_page_matches_the_metafiles():
    page = (ROOT / 'docs/model_zoo.md').read_text()
    rows = {line.split('`')[1]: line for line in page.splitlines() if line.startswith('| `')}
    assert set(rows) == set(HUB.models)
    for name, info in HUB.models.items():
        row = rows[name]
        assert f'`{Path(info.config).relative_to(ROOT).as_posix()}`' in row, name
        assert (f'[model]({info.weights})' in row) == (info.weights is not None), name
        if info.results:
            assert f'| {_top1(info)} |' in row, name
