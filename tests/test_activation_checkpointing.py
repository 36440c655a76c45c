"""``with_cp`` (activation checkpointing) in every transformer and ConvNeXt backbone, and the same applied from outside
the model (``mimlab.engine.parallel``), alone and under DDP: the same loss and gradients, stochastic depth included,
and the blocks really run twice (forward, then again in the backward pass)."""

import copy

import pytest
import torch

from mimlab.apis import register_all_modules
from mimlab.engine.parallel import apply_activation_checkpointing
from mimlab.registry import MODELS

from .helpers import tiny_mae

register_all_modules()


def _simmim(backbone: dict):
    model = MODELS.build(
        dict(type='SimMIM', backbone=backbone, neck=dict(type='SimMIMLinearDecoder'), head=dict(type='SimMIMHead'))
    )
    model.init_weights()
    return model


def _mask_samples(grid: int, n: int) -> list:
    from mimlab.structures import DataSample

    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(n):
        s = DataSample()
        s.set_mask((torch.rand(grid, grid, generator=g) < 0.6).long())
        samples.append(s)
    return samples


CASES = {
    # MAE's masked encoder path, with stochastic depth: the recomputation must redraw the same drop decisions
    'vit-mae': lambda cp: (
        tiny_mae(patch_size=4, backbone_extra=dict(drop_path_rate=0.3, with_cp=cp)),
        torch.randn(2, 3, 32, 32),
        None,
        'backbone.layers.0.ln1',
    ),
    'swin-simmim': lambda cp: (
        _simmim(dict(type='SimMIMSwinTransformer', arch='test', img_size=64, window_size=2, with_cp=cp)),
        torch.randn(2, 3, 64, 64),
        _mask_samples(16, 2),
        'backbone.stages.0.blocks.0.norm1',
    ),
    # MixMIM: window attention with the two images' blocking mask, drop path
    'mixmim': lambda cp: (
        MODELS.build(
            dict(
                type='MixMIM',
                backbone=dict(
                    type='MixMIMPretrainTransformer',
                    arch=dict(embed_dims=16, depths=[1, 2, 1], num_heads=[1, 2, 4]),
                    img_size=32,
                    window_size=[4, 4, 2],
                    drop_path_rate=0.3,
                    with_cp=cp,
                ),
                neck=dict(type='MixMIMPretrainDecoder', decoder_embed_dims=16, decoder_depth=1, decoder_num_heads=2),
                head=dict(type='MixMIMPretrainHead', norm_pix=True),
            )
        ),
        torch.randn(2, 3, 32, 32),
        None,
        'backbone.layers.1.blocks.1.ln1',
    ),
    'convnext-a2mim': lambda cp: (
        MODELS.build(
            dict(
                type='A2MIM',
                backbone=dict(type='MIMConvNeXt', arch='atto', mask_layer=2, drop_path_rate=0.3, with_cp=cp),
                neck=dict(type='SimMIMLinearDecoder'),
                head=dict(type='A2MIMHead', loss=dict(type='FocalL1Loss', alpha=0.2, gamma=1.0, activate='sigmoid')),
            )
        ),
        torch.randn(2, 3, 64, 64),
        _mask_samples(4, 2),
        'backbone.stages.0.0.norm',
    ),
}


@pytest.mark.parametrize('how', ['with_cp', 'applied'])
@pytest.mark.parametrize('name', sorted(CASES))
def test_checkpointed_blocks_give_the_same_gradients_and_run_twice(name, how):
    """``with_cp=True`` in the backbone config, or ``apply_activation_checkpointing`` on the plain model from outside
    (what ``FullyShardWrapper(activation_checkpointing=True)`` and ``CheckpointedDDP`` do)."""
    torch.manual_seed(0)
    plain, x, samples, probe = CASES[name](False)
    cp, _, _, _ = CASES[name](how == 'with_cp')
    if how == 'applied':
        assert apply_activation_checkpointing(cp)
    cp.load_state_dict(plain.state_dict())
    grads, calls = [], []
    for model in (plain, cp):
        model.train()
        count = [0]
        model.get_submodule(probe).register_forward_hook(lambda *_, c=count: c.__setitem__(0, c[0] + 1))
        torch.manual_seed(1)
        loss = model.loss(x, copy.deepcopy(samples))['loss']
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        calls.append(count[0])
    assert calls == [1, 2]  # with_cp: recomputed in the backward pass
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-5, atol=1e-7, msg=n)


def test_no_recompute_without_gradients():
    model = tiny_mae(patch_size=4, backbone_extra=dict(with_cp=True)).eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 32, 32))
    assert feats[0].shape == (1, 65, 32)


def _ddp_rank(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel

    from mimlab.engine.parallel import CheckpointedDDP

    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    result = {}
    for wrapper in (MMDistributedDataParallel, CheckpointedDDP):
        torch.manual_seed(0)
        model = tiny_mae(patch_size=4, backbone_extra=dict(drop_path_rate=0.3))
        count = [0]
        model.get_submodule('backbone.layers.0.ln1').register_forward_hook(
            lambda *_, c=count: c.__setitem__(0, c[0] + 1)
        )
        ddp = wrapper(module=model)
        torch.manual_seed(1 + rank)
        ddp(torch.randn(2, 3, 32, 32), mode='loss')['loss'].backward()
        result[wrapper.__name__] = (
            {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
            count[0],
        )
    if rank == 0:
        torch.save(result, out)
    dist.destroy_process_group()


def test_checkpointed_ddp_gives_ddp_gradients(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_rank, args=(port, str(tmp_path / 'g.pth')), nprocs=2, join=True)
    result = torch.load(tmp_path / 'g.pth', weights_only=True)
    (plain, plain_calls), (cp, cp_calls) = result['MMDistributedDataParallel'], result['CheckpointedDDP']
    assert (plain_calls, cp_calls) == (1, 2)
    assert plain.keys() == cp.keys() and plain
    for n in plain:
        torch.testing.assert_close(cp[n], plain[n], rtol=1e-5, atol=1e-7, msg=n)
