"""What A2MIM's fine-tuning recipes take from timm and mmengine, checked against the formulas they implement:
LAMB, binary cross-entropy on Mixup/CutMix soft targets, weight EMA with openmixup's warm-up (average, checkpoint,
exact resume), and the repeated-augmentation sampler (repeats, ranks, resume)."""

import math

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from timm.data import Mixup
from timm.data.distributed_sampler import RepeatAugSampler as TimmRepeatAugSampler

from mimlab.datasets import RepeatAugSampler
from mimlab.engine import WarmupExponentialMovingAverage
from mimlab.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from mimlab.utils import load_checkpoint_weights_only

# ------------------------------------------------------------------------------------------------------------ LAMB


def lamb_reference(params, grads_per_step, lr, wd, betas=(0.9, 0.999), eps=1e-6, max_grad_norm=1.0):
    """The LAMB paper's update (You et al. 2019, Algorithm 2, Adam moments with bias correction) plus the global
    gradient-norm clip of NVIDIA's FusedLAMB, written out per parameter. ``wd[i] == 0``: no trust ratio."""
    b1, b2 = betas
    p = [x.clone().double() for x in params]
    m = [torch.zeros_like(x) for x in p]
    v = [torch.zeros_like(x) for x in p]
    for t, grads in enumerate(grads_per_step, start=1):
        g = [x.double() for x in grads]
        norm = math.sqrt(sum(float((x**2).sum()) for x in g))
        g = [x / max(norm / max_grad_norm, 1.0) for x in g]
        for i in range(len(p)):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            u = (m[i] / (1 - b1**t)) / ((v[i] / (1 - b2**t)).sqrt() + eps)
            ratio = 1.0
            if wd[i] > 0:
                u = u + wd[i] * p[i]
                pn, un = float(p[i].norm()), float(u.norm())
                ratio = pn / un if pn > 0 and un > 0 else 1.0
            p[i] = p[i] - lr * ratio * u
    return p


def test_lamb_equals_the_papers_update_with_global_clip_and_no_decay_groups():
    torch.manual_seed(0)
    shapes = [(8, 4), (4,), (3, 3, 2, 2), (5,)]
    params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    wd = [0.02, 0.0, 0.02, 0.0]
    # step 2's gradients are large enough for the global clip to act
    steps = [[torch.randn(s) * scale for s in shapes] for scale in (0.05, 10.0, 0.3)]
    optimizer = _lamb(params, wd)
    for grads in steps:
        for param, grad in zip(params, grads):
            param.grad = grad.clone()
        optimizer.step()
    expected = lamb_reference([p.detach() for p in _initial(shapes)], steps, lr=8e-3, wd=wd)
    for got, want in zip(params, expected):
        torch.testing.assert_close(got.detach().double(), want, rtol=1e-5, atol=1e-7)


def _initial(shapes):
    torch.manual_seed(0)
    return [torch.randn(s) for s in shapes]


def _lamb(params, wd):  # noqa: N802 - built through mimlab's registry, as a config would
    from mimlab.registry import OPTIMIZERS

    groups = [dict(params=[p], weight_decay=w) for p, w in zip(params, wd)]
    return OPTIMIZERS.build(dict(type='Lamb', params=groups, lr=8e-3, weight_decay=0.02))


def test_lamb_through_the_recipes_constructor_exempts_1d_parameters():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='LayerDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='Lamb', lr=5e-3, weight_decay=0.02)),
        )
    )
    wrapper = constructor(model)
    assert type(wrapper.optimizer).__name__ == 'Lamb'
    decay = {n: g['weight_decay'] for g in wrapper.optimizer.param_groups for n in g['param_names']}
    assert decay == {'0.weight': 0.02, '0.bias': 0.0, '1.weight': 0.0, '1.bias': 0.0}


# ------------------------------------------------------------------------------------------------------------- BCE


def test_bce_on_mixed_targets_equals_the_formula_summed_over_classes():
    torch.manual_seed(0)
    num_classes = 10
    logits = torch.randn(8, num_classes)
    labels = torch.randint(0, num_classes, (8,))
    images = torch.randn(8, 3, 16, 16)
    mixup = Mixup(mixup_alpha=0.1, cutmix_alpha=1.0, label_smoothing=0.0, num_classes=num_classes)
    _, soft = mixup(images, labels)  # (B, K): lam * onehot(a) + (1 - lam) * onehot(b)
    assert torch.allclose(soft.sum(-1), torch.ones(8))
    loss = MODELS.build(dict(type='BinaryCrossEntropy', smoothing=0.0, sum_classes=True))
    s = torch.sigmoid(logits.double())
    y = soft.double()
    expected = -(y * s.log() + (1 - y) * (1 - s).log()).sum(-1).mean()  # openmixup: sum over K, / B
    torch.testing.assert_close(loss(logits, soft).double(), expected, rtol=1e-6, atol=1e-7)
    # class indices are one-hot encoded
    hard = torch.nn.functional.one_hot(labels, num_classes).double()
    expected_hard = -(hard * s.log() + (1 - hard) * (1 - s).log()).sum(-1).mean()
    torch.testing.assert_close(loss(logits, labels).double(), expected_hard, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------------------------------------- EMA


@pytest.mark.parametrize('warmup_iters', [0, 4])
def test_ema_after_n_updates_equals_the_recurrence(warmup_iters):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    ema = WarmupExponentialMovingAverage(model, momentum=0.1, warmup_iters=warmup_iters, warmup_ratio=0.5)
    expected = None
    for t in range(7):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update_parameters(model)
        w = model.weight.detach().double()
        if t == 0:
            expected = w.clone()  # mmengine's first update copies the weights
        else:
            d = 0.9 * (1 - max(1 - t / warmup_iters, 0) * 0.5) if warmup_iters else 0.9
            expected = d * expected + (1 - d) * w  # m * ema + (1 - m) * w with openmixup's decay m
        torch.testing.assert_close(ema.module.weight.detach().double(), expected, rtol=1e-6, atol=1e-7)


def test_ema_rejects_bad_warmup():
    with pytest.raises(ValueError, match='warmup_ratio'):
        WarmupExponentialMovingAverage(torch.nn.Linear(2, 2), momentum=0.1, warmup_iters=3, warmup_ratio=0.0)


# --------------------------------------------------------------------------------------------- repeated augmentation


class _Indices(torch.utils.data.Dataset):
    """A dataset of ``n`` samples whose sample is its index (the sampler only needs the length)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


@pytest.mark.parametrize('length,selected_round', [(1000, 256), (90, 0)])
def test_repeat_aug_sampler_two_ranks_repeats_every_index_three_times(length, selected_round):
    dataset = _Indices(length)
    for epoch in range(2):
        per_rank = []
        for rank in range(2):
            sampler = RepeatAugSampler(dataset, selected_round=selected_round, seed=0, num_replicas=2, rank=rank)
            sampler.set_epoch(epoch)
            timm_sampler = TimmRepeatAugSampler(
                list(range(length)), num_replicas=2, rank=rank, selected_round=selected_round
            )
            timm_sampler.set_epoch(epoch)
            indices = list(sampler)
            assert indices == list(timm_sampler)  # seed 0: timm's (and openmixup's) indices
            assert len(indices) == len(sampler)
            per_rank.append(indices)
        # a plain epoch's length: len(dataset) // selected_round * selected_round / 2 per rank (ceil(len / 2) if 0)
        expected_len = length // selected_round * selected_round // 2 if selected_round else math.ceil(length / 2)
        assert len(per_rank[0]) == len(per_rank[1]) == expected_len
        # the global stream (rank 0, rank 1, rank 0, ...) is the permutation with every index repeated 3 times in a
        # row, cut where the ranks stop: every index in it appears 3 times (the last one possibly fewer)
        stream = [i for pair in zip(*per_rank) for i in pair]
        firsts = stream[::3]
        assert len(set(firsts)) == len(firsts)
        for j, first in enumerate(firsts):
            assert stream[3 * j : 3 * j + 3] == [first] * len(stream[3 * j : 3 * j + 3])
        counts = {i: stream.count(i) for i in set(stream)}
        assert sorted(counts.values())[1:] == [3] * (len(counts) - 1)
        # the copies of an image go to both ranks
        assert all(len({k % 2 for k, i in enumerate(stream) if i == idx}) == 2 for idx in firsts[:-1])


def test_repeat_aug_sampler_seed_and_resume():
    dataset = _Indices(600)
    a = RepeatAugSampler(dataset, seed=5, num_replicas=2, rank=1)
    a.set_epoch(3)
    full = list(a)
    assert full == list(a)  # deterministic per (seed, epoch)
    other = RepeatAugSampler(dataset, seed=6, num_replicas=2, rank=1)
    other.set_epoch(3)
    assert list(other) != full
    # a new process resuming epoch 3 after 4 batches of 32: the rest of the uninterrupted order, once
    resumed = RepeatAugSampler(dataset, seed=5, num_replicas=2, rank=1)
    resumed.set_epoch(3)
    resumed.skip(4 * 32)
    assert list(resumed) == full[4 * 32 :]
    assert list(resumed) == full
    with pytest.raises(ValueError, match='cannot skip'):
        resumed.skip(len(resumed) + 1)


def test_repeat_aug_sampler_gives_each_copy_its_own_augmentation_seed():
    """Per-sample seeding (ExactResumeSampler's): the 3 copies of an image are seeded apart, the same way after a
    resume, and the dataset fetches draw from those seeds."""
    from mimlab.datasets.samplers import SampleKey

    dataset = _Indices(90)
    keys = []
    for rank in range(2):
        sampler = RepeatAugSampler(dataset, selected_round=0, seed=3, num_replicas=2, rank=rank)
        sampler.set_epoch(4)
        keys.append(list(sampler))
        resumed = RepeatAugSampler(dataset, selected_round=0, seed=3, num_replicas=2, rank=rank)
        resumed.set_epoch(4)
        resumed.skip(10)
        assert [(int(k), k.seed, k.epoch) for k in resumed] == [(int(k), k.seed, k.epoch) for k in keys[rank][10:]]
    stream = [k for pair in zip(*keys) for k in pair]
    assert all(isinstance(k, SampleKey) and k.seed == 3 for k in stream)
    for j in range(0, len(stream) - 2, 3):  # one image's 3 copies: same index, epochs 4*3 + 0, 1, 2
        assert len({int(k) for k in stream[j : j + 3]}) == 1
        assert [k.epoch for k in stream[j : j + 3]] == [12, 13, 14]
    assert type(dataset.__getitems__).__name__ == 'SeededFetch'
    plain = RepeatAugSampler(_Indices(90), selected_round=0, seed=3, num_replicas=2, rank=0, seed_samples=False)
    assert not any(isinstance(k, SampleKey) for k in plain)


# ----------------------------------------------------------------------------------- EMA and RepeatAugSampler in a run

DEMO_FT = 'configs/demo/resnet-test_ft-rsb-1xb64-lamb-coslr-20e_builtin-64px.py'


def _demo_runner(work_dir, **overrides) -> Runner:
    """The demo RSB fine-tuning recipe (LAMB, BCE, Mixup/CutMix, EMA) from random init with RSB A2's
    RepeatAugSampler, tiny: 64 images of 32 px in batches of 16 (4 iterations per epoch), 2 epochs, a checkpoint after
    every iteration."""
    from mimlab.engine import build_runner

    cfg = Config.fromfile(DEMO_FT)
    cfg.model.backbone.init_cfg = None
    cfg.train_dataloader.update(batch_size=16, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.sampler = dict(type='RepeatAugSampler', shuffle=True, num_repeats=3, selected_round=0)
    cfg.train_dataloader.dataset.update(num_samples=64, img_size=32)
    cfg.train_dataloader.dataset.pipeline[0]['scale'] = 32
    cfg.val_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.val_dataloader.dataset.update(num_samples=32, img_size=32)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.update(max_epochs=2, val_interval=2)
    cfg.custom_hooks[0].update(momentum=0.2, warmup_iters=4)
    cfg.default_hooks.checkpoint.update(by_epoch=False, interval=1, max_keep_ckpts=-1)
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.work_dir = str(work_dir)
    cfg.update(overrides)
    return build_runner(cfg)


def test_ema_checkpoint_holds_the_average_loads_as_the_model_and_resumes_exactly(tmp_path):
    seen = []

    class Capture(Hook):  # the weights the end-of-training validation runs with
        def before_val_iter(self, runner, batch_idx, data_batch=None):
            seen.append({k: v.clone() for k, v in runner.model.state_dict().items()})

    full = _demo_runner(tmp_path / 'full')
    full.register_hook(Capture(), priority='LOWEST')
    full.train()
    end = load_checkpoint_weights_only(str(tmp_path / 'full/iter_8.pth'))
    # state_dict holds the EMA weights, ema_state_dict the live ones (mmengine's EMAHook), and they differ
    live = {k[len('module.') :]: v for k, v in end['ema_state_dict'].items() if k.startswith('module.')}
    assert int(end['ema_state_dict']['steps']) == 8
    assert any(not torch.equal(end['state_dict'][k], live[k]) for k in live if 'weight' in k)
    # the EMA weights load strictly as the classifier
    cfg = Config.fromfile(DEMO_FT)
    cfg.model.backbone.init_cfg = None
    MODELS.build(cfg.model).load_state_dict(end['state_dict'], strict=True)
    # validation ran with the EMA weights, which were swapped out again afterwards
    assert len(seen) == 1
    for key, value in end['state_dict'].items():
        assert torch.equal(seen[0][key], value), key
    for key, value in live.items():
        assert torch.equal(full.model.state_dict()[key], value), key
    # resuming from the checkpoint of iteration 5 (epoch 2, batch 1: RepeatAugSampler.skip) ends bit-exactly as the
    # uninterrupted run: EMA, warm-up position, live weights and optimizer state
    resumed = _demo_runner(tmp_path / 'resumed', resume=True, load_from=str(tmp_path / 'full/iter_5.pth'))
    resumed.train()
    again = load_checkpoint_weights_only(str(tmp_path / 'resumed/iter_8.pth'))
    for part in ('state_dict', 'ema_state_dict'):
        for key, value in end[part].items():
            assert torch.equal(again[part][key], value), (part, key)


def test_constructor_weight_decay_option_keeps_decay_on_named_1d_parameters():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))

    def build(**paramwise):
        return OPTIM_WRAPPER_CONSTRUCTORS.build(
            dict(
                type='LayerDecayOptimWrapperConstructor',
                optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='Lamb', lr=5e-3, weight_decay=0.02)),
                paramwise_cfg=paramwise,
            )
        )(model)

    decay = {
        n: g['weight_decay'] for g in build(weight_decay=['1.weight']).optimizer.param_groups for n in g['param_names']
    }
    assert decay == {'0.weight': 0.02, '0.bias': 0.0, '1.weight': 0.02, '1.bias': 0.0}
    with pytest.raises(ValueError, match=r"\['1.weight'\] in both no_weight_decay and weight_decay"):
        build(weight_decay=['1.weight'], no_weight_decay=['1.weight'])
    with pytest.raises(ValueError, match=r"weight_decay: \['downsample.1.weight'\] match no parameter"):
        build(weight_decay=['downsample.1.weight'])


def _two_rank_sampler_worker(rank: int, port: int, out_dir: str) -> None:
    """One of 2 gloo processes: the sampler takes rank, world size and the shared seed from the process group."""
    import json
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        torch.manual_seed(rank)  # different draws per rank: the seed must still be the same
        import numpy as np

        np.random.seed(rank)
        sampler = RepeatAugSampler(_Indices(600), selected_round=0)
        orders = {}
        for epoch in range(2):
            sampler.set_epoch(epoch)
            orders[epoch] = list(sampler)
        sampler.set_epoch(1)
        sampler.skip(96)  # a resumed second epoch after 3 batches of 32
        orders['resumed'] = list(sampler)
        with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f:
            json.dump(dict(seed=sampler.seed, orders=orders), f)
    finally:
        dist.destroy_process_group()


def test_repeat_aug_sampler_in_two_gloo_processes(tmp_path):
    import json
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    # spawn, not fork: a fork of the test process can deadlock on a lock held by one of its other threads
    mp.spawn(_two_rank_sampler_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(2)]
    assert ranks[0]['seed'] == ranks[1]['seed']  # broadcast from rank 0
    for epoch in ('0', '1'):
        a, b = ranks[0]['orders'][epoch], ranks[1]['orders'][epoch]
        assert len(a) == len(b) == 300
        stream = [i for pair in zip(a, b) for i in pair]
        counts = {i: stream.count(i) for i in set(stream)}
        assert sorted(counts.values()) == [3] * len(counts)  # 600 / 3 = 200 images, 3 copies each
        assert len(counts) == 200
    for rank in ranks:
        assert rank['orders']['resumed'] == rank['orders']['1'][96:]
