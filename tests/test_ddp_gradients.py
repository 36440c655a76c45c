"""2 real DDP processes (gloo) x batch b average to the same gradients as 1 process with batch 2b."""

import socket
from unittest import mock

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

import mimlab.models.algorithms.mae as mae_module
from tests.helpers import tiny_mae

B = 4  # per rank
IMG, PATCH = 32, 8
L = (IMG // PATCH) ** 2


def batch_and_noise():
    """2B images and the 2B rows of masking noise, fixed by seed; rank r takes rows [r*B, (r+1)*B)."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(2 * B, 3, IMG, IMG, generator=g), torch.rand(2 * B, L, generator=g)


def grads_of(model, images, noise) -> dict:
    """Gradients of MAE's loss with the mask drawn from ``noise`` instead of the global RNG.

    The only randomness in this model is MAE's mask: ``random_mask_ids`` makes one ``torch.rand(B, L)`` per forward,
    so B rows on a rank would not be the same as rows [r*B, (r+1)*B) of a 2B draw. Feeding the same noise rows to
    ``torch.rand`` inside the real ``random_mask_ids`` gives every sample the same mask in both set-ups. Drop path
    and dropout are 0 in the 'test' arch. With a fixed mask ratio every sample has the same number of masked
    patches, so the loss over 2B samples is the mean of the two ranks' losses, and DDP's gradient mean is exact.
    """
    real_masking = mae_module.random_mask_ids

    def fixed_masking(batch, num_patches, ratio, device=None):
        with mock.patch.object(torch, 'rand', lambda *size, **kw: noise.to(device)):
            return real_masking(batch, num_patches, ratio, device)

    with mock.patch.object(mae_module, 'random_mask_ids', fixed_masking):
        loss = model(images, mode='loss')['loss']
    loss.backward()
    module = model.module if isinstance(model, DistributedDataParallel) else model
    return {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}


def _rank(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    torch.manual_seed(0)
    model = DistributedDataParallel(tiny_mae(img_size=IMG, patch_size=PATCH))
    images, noise = batch_and_noise()
    rows = slice(rank * B, (rank + 1) * B)
    grads = grads_of(model, images[rows], noise[rows])
    if rank == 0:
        torch.save(grads, out)
    dist.destroy_process_group()


def test_two_rank_ddp_gradients_equal_one_process_with_twice_the_batch(tmp_path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(port, str(tmp_path / 'ddp.pth')), nprocs=2, join=True)
    ddp = torch.load(tmp_path / 'ddp.pth', weights_only=True)

    torch.manual_seed(0)  # the same initial weights as every rank built
    images, noise = batch_and_noise()
    single = grads_of(tiny_mae(img_size=IMG, patch_size=PATCH), images, noise)
    assert ddp.keys() == single.keys() and len(single) > 10
    for key, grad in single.items():
        torch.testing.assert_close(ddp[key], grad, rtol=0, atol=1e-6, msg=key)
    # the check has teeth: one rank's half alone gives different gradients
    torch.manual_seed(0)
    half = grads_of(tiny_mae(img_size=IMG, patch_size=PATCH), images[:B], noise[:B])
    assert any((half[k] - single[k]).abs().max() > 1e-4 for k in single)
