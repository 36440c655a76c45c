"""Evaluation machinery: LARS, layer-wise lr decay, Mixup/CutMix targets, smoothing, kNN, checkpoint loading."""

import pytest
import torch

from mimlab.engine.optimizers import LARS
from mimlab.evaluation import knn_predict, topk_accuracy
from mimlab.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from mimlab.structures import DataSample
from tests.helpers import tiny_mae


# ---------------------------------------------------------------------------------------------------- LARS
def _lars_reference(params, grads, lr, wd, momentum, eta, steps):
    """Float64 transcription of the update rule, parameter by parameter, with python floats."""
    params = [p.double().clone() for p in params]
    mus = [torch.zeros_like(p) for p in params]
    for step in range(steps):
        for p, g, mu in zip(params, grads[step], mus):
            g = g.double()
            if p.ndim > 1:
                d = g + wd * p
                pn, dn = p.norm().item(), d.norm().item()
                q = eta * pn / dn if pn > 0 and dn > 0 else 1.0
                d = d * q
            else:
                d = g
            mu.mul_(momentum).add_(d)
            p.sub_(lr * mu)
    return params


def test_lars_matches_float64_reference():
    torch.manual_seed(0)
    shapes = [(8, 5), (8,), (3, 4, 2), (5,)]
    params = [torch.randn(s, dtype=torch.float64) for s in shapes]
    params[3].zero_()  # zero norm: trust ratio falls back to 1 (1-D anyway)
    steps = 3
    grads = [[torch.randn(s, dtype=torch.float64) for s in shapes] for _ in range(steps)]
    ours = [torch.nn.Parameter(p.clone()) for p in params]
    opt = LARS(ours, lr=0.5, weight_decay=0.01, momentum=0.9, eta=0.001)
    for step in range(steps):
        for p, g in zip(ours, grads[step]):
            p.grad = g.clone()
        opt.step()
    ref = _lars_reference(params, grads, 0.5, 0.01, 0.9, 0.001, steps)
    for a, b in zip(ours, ref):
        assert torch.allclose(a.detach(), b, rtol=0, atol=1e-12)


def test_lars_step_makes_no_host_sync(monkeypatch):
    p = torch.nn.Parameter(torch.randn(4, 4))
    p.grad = torch.randn(4, 4)
    opt = LARS([p], lr=0.1)
    monkeypatch.setattr(torch.Tensor, 'item', lambda self: (_ for _ in ()).throw(AssertionError('.item() in step')))
    opt.step()


# -------------------------------------------------------------------------------------------- layer decay
def _classifier(arch='b', **backbone):
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='VisionTransformer', arch=arch, out_type='avg_featmap', final_norm=False, **backbone),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=768 if arch == 'b' else 32),
        )
    )


def test_layer_decay_table_vit_b():
    model = _classifier('b', drop_path_rate=0.1)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='LayerDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05)),
            paramwise_cfg=dict(layer_decay_rate=0.65),
        )
    )
    groups = constructor(model).optimizer.param_groups
    by_name = {n: g for g in groups for n in g['param_names']}
    rate, blocks = 0.65, 12
    # official MAE numbering: stem depth 0, block i depth i+1, everything after the blocks depth 13 (scale 1)
    for name, depth in [
        ('backbone.patch_embed.projection.weight', 0),
        ('backbone.cls_token', 0),
        ('backbone.layers.0.attn.qkv.weight', 1),
        ('backbone.layers.5.ffn.layers.1.bias', 6),
        ('backbone.layers.11.ln2.weight', 12),
        ('backbone.ln2.weight', 13),
        ('head.fc.weight', 13),
    ]:
        assert by_name[name]['lr'] == pytest.approx(2e-3 * rate ** (blocks + 1 - depth)), name
    assert by_name['backbone.cls_token']['weight_decay'] == 0.0
    assert by_name['backbone.layers.0.attn.qkv.bias']['weight_decay'] == 0.0
    assert by_name['head.fc.weight']['weight_decay'] == 0.05
    assert len(groups) <= 2 * (blocks + 2)  # O(layers), not O(parameters)
    assert sum(len(g['params']) for g in groups) == sum(p.requires_grad for p in model.parameters())


# ---------------------------------------------------------------------------------------- mixup / smoothing
def test_mixup_cutmix_targets_sum_to_one_and_smoothing_exact():
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='VisionTransformer', arch='test', img_size=32, patch_size=8, out_type='cls_token'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=32),
            train_cfg=dict(augments=dict(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1)),
        )
    )
    torch.manual_seed(0)
    for _ in range(10):
        x, y = model.mixup(torch.randn(8, 3, 32, 32), torch.arange(8))
        assert y.shape == (8, 10)
        assert torch.allclose(y.sum(1), torch.ones(8), atol=1e-6)
        assert (y >= 0.01 - 1e-7).all()  # every class keeps at least eps / K
    loss = MODELS.build(dict(type='CrossEntropyLoss', label_smooth_val=0.1))
    logits = torch.randn(3, 10)
    target = torch.tensor([1, 4, 9])
    smoothed = torch.full((3, 10), 0.01)
    smoothed[torch.arange(3), target] = 0.91
    expected = -(smoothed * logits.log_softmax(-1)).sum(-1).mean()
    assert torch.allclose(loss(logits, target), expected)


# ------------------------------------------------------------------------------------------------------ kNN
def test_knn_separable_is_perfect_and_random_is_chance():
    torch.manual_seed(0)
    K, per = 10, 40
    centres = torch.eye(K, 64) * 10
    bank_labels = torch.arange(K).repeat_interleave(per)
    bank = centres[bank_labels] + 0.1 * torch.randn(K * per, 64)
    q_labels = torch.arange(K).repeat_interleave(10)
    query = centres[q_labels] + 0.1 * torch.randn(K * 10, 64)
    assert topk_accuracy(knn_predict(query, bank, bank_labels, K), q_labels)[1] == 100.0
    rand_bank = torch.randn(2000, 64)
    rand_labels = torch.randint(0, K, (2000,))
    acc = topk_accuracy(knn_predict(torch.randn(2000, 64), rand_bank, rand_labels, K), torch.randint(0, K, (2000,)))
    assert 5.0 < acc[1] < 15.0


# ------------------------------------------------------------------------------------ pretrained checkpoint
def test_mae_checkpoint_loads_into_classifier_with_exactly_head_and_neck_missing(tmp_path):
    mae = tiny_mae()
    ckpt = tmp_path / 'mae.pth'
    torch.save(dict(meta=dict(), state_dict=mae.state_dict()), ckpt)
    probe = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='VisionTransformer',
                arch='test',
                img_size=32,
                patch_size=8,
                out_type='cls_token',
                frozen_stages=2,
                init_cfg=dict(type='Pretrained', checkpoint=str(ckpt), prefix='backbone.'),
            ),
            neck=dict(type='ClsBatchNormNeck', input_features=32),
            head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=32),
        )
    )
    probe.init_weights()
    for k, v in mae.backbone.state_dict().items():
        assert torch.equal(probe.backbone.state_dict()[k], v), k
    incompatible = probe.load_state_dict(mae.state_dict(), strict=False)
    # (BatchNorm fills a missing num_batches_tracked silently, so it is not reported)
    assert set(incompatible.missing_keys) == {
        'neck.bn.running_mean',
        'neck.bn.running_var',
        'head.layers.head.weight',
        'head.layers.head.bias',
    }
    # the frozen backbone gets no gradient, the head does
    probe.train()
    samples = [DataSample().set_gt_label(i) for i in range(4)]
    probe.loss(torch.randn(4, 3, 32, 32), samples)['loss'].backward()
    assert all(p.grad is None for p in probe.backbone.parameters())
    assert probe.head.layers.head.weight.grad is not None
    assert not probe.backbone.layers[0].training


def test_layer_decay_table_swin_b():
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='SwinTransformer', arch='base', img_size=192, window_size=6),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=1024),
        )
    )
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='LayerDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=5e-3, weight_decay=0.05)),
            paramwise_cfg=dict(layer_decay_rate=0.9),
        )
    )
    groups = constructor(model).optimizer.param_groups
    by_name = {n: g for g in groups for n in g['param_names']}
    blocks = 24  # 2 + 2 + 18 + 2; depth 0 = stem, block k (counted over stages) = k + 1, the rest = 25
    for name, depth in [
        ('backbone.patch_embed.projection.weight', 0),
        ('backbone.stages.0.blocks.0.attn.w_msa.qkv.weight', 1),
        ('backbone.stages.2.blocks.17.ffn.layers.1.weight', 22),
        ('backbone.stages.2.downsample.reduction.weight', 22),
        ('backbone.stages.3.blocks.1.norm2.weight', 24),
        ('backbone.norm3.weight', 25),
        ('head.fc.weight', 25),
    ]:
        assert by_name[name]['lr'] == pytest.approx(5e-3 * 0.9 ** (blocks + 1 - depth)), name
    assert by_name['backbone.stages.0.blocks.0.attn.w_msa.relative_position_bias_table']['weight_decay'] == 0.0
    assert len(groups) <= 2 * (blocks + 2)
