"""ChannelsLastHook / to_channels_last: the CNN path in channels_last memory format computes the same thing."""

import copy
from pathlib import Path

import torch
from mmengine.config import Config

from mimlab.engine.hooks import ChannelsLastHook, to_channels_last
from mimlab.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from mimlab.structures import DataSample

DEMO = Path(__file__).resolve().parents[1] / 'configs/demo/a2mim_resnet-test-l3_1xb64-coslr-10e_builtin-64px.py'


def _a2mim_and_batch():
    cfg = Config.fromfile(str(DEMO))
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    model.init_weights()
    g = torch.Generator().manual_seed(1)
    inputs = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=g)
    masks = [(torch.rand(4, 4, generator=g) < 0.6).long() for _ in range(4)]
    return model, dict(inputs=inputs, data_samples=[DataSample().set_mask(m) for m in masks])


def _optim(model):
    return OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='LayerDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        )
    )(model)


def test_a2mim_resnet_steps_equal_in_channels_last():
    """Two training steps of the A2MIM ResNet demo: NCHW vs channels_last after the first step (optimizer state
    converted too), same losses and weights to float rounding; the batch and the 4-D weights are channels_last."""
    model, batch = _a2mim_and_batch()
    other = copy.deepcopy(model)
    wrapper, other_wrapper = _optim(model), _optim(other)
    losses = [model.train_step(copy.deepcopy(batch), wrapper)['loss']]
    other_losses = [other.train_step(copy.deepcopy(batch), other_wrapper)['loss']]
    assert to_channels_last(other, other_wrapper.optimizer) > 10
    convs = [p for p in other.parameters() if p.dim() == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    states = [s['exp_avg'] for p, s in other_wrapper.optimizer.state.items() if p.dim() == 4 and p.shape[-1] > 1]
    assert states and all(s.is_contiguous(memory_format=torch.channels_last) for s in states)
    out = other.data_preprocessor(copy.deepcopy(batch), True)['inputs']
    assert out.is_contiguous(memory_format=torch.channels_last)
    # second step: the gradients agree to float rounding; the fused AdamW step then runs on channels_last params
    # and state (Adam divides by sqrt(v): a near-zero gradient's rounding can move a weight by ~lr, compare loosely)
    grads = []
    for m, w in ((model, wrapper), (other, other_wrapper)):
        data = m.data_preprocessor(copy.deepcopy(batch), True)
        loss = m.loss(**data)['loss']
        w.backward(loss)
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
        w.step()
        w.zero_grad()
        (losses if m is model else other_losses).append(loss.detach())
    torch.testing.assert_close(torch.stack(other_losses), torch.stack(losses), rtol=1e-5, atol=1e-6)
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-4, atol=1e-6)
    a, b = model.state_dict(), other.state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=2e-3)
    # checkpoints load either way
    fresh, _ = _a2mim_and_batch()
    fresh.load_state_dict(b)
    assert all(torch.equal(fresh.state_dict()[k], b[k]) for k in b)


def test_hook_is_registered():
    assert isinstance(HOOKS.build(dict(type='ChannelsLastHook')), ChannelsLastHook)


def test_hook_converts_in_a_runner_only_where_asked(tmp_path):
    """In mmengine's Runner: converted with on_cpu=True, left alone on the CPU by default (GPU-only by default)."""
    from tests.test_guard_and_checkpoints import demo_runner

    for on_cpu in (True, False):
        runner = demo_runner(tmp_path / str(on_cpu), ChannelsLastHook(on_cpu=on_cpu), epochs=2)
        runner.train()
        weight = runner.model.backbone.patch_embed.projection.weight
        assert weight.is_contiguous(memory_format=torch.channels_last) == on_cpu
        assert runner.model.data_preprocessor.channels_last == on_cpu
