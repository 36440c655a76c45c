"""FLOPs of a training step, counted and by hand.

:func:`count_train_flops` counts what a forward + backward really executes with ``torch.utils.flop_counter``
(plus :data:`EXTRA_FLOP_FORMULAS`, the kernels torch's counter misses or miscounts); :func:`mae_train_flops` is the hand
count of an MAE it is checked against, and the reference figure of ``recipes_perf_users.md`` §2.1.

Legend: ``B`` batch, ``H x W`` image, ``L`` patches, ``N`` tokens, ``D`` width, ``F`` MLP hidden width,
``P = p * p * 3`` pixels per patch.
"""

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

_aten = torch.ops.aten


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    """Each requested gradient of a convolution costs what its forward costs: ``2 B prod(out spatial) prod(w)``,
    with ``w = (C_out, C_in / groups, k...)`` so groups count. torch 2.11's formula drops ``groups`` for the weight
    gradient and counts a depthwise conv's weight gradient C times too high (ConvNeXt: ~3x the real step)."""
    transposed, output_mask = args[4], args[7]
    spatial = (x_shape if transposed else grad_out_shape)[2:]
    forward = 2 * x_shape[0] * math.prod(spatial) * math.prod(w_shape)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


# torch 2.11's counter knows the CUDA attention kernels but not the CPU one, which would silently drop attention;
# its convolution-backward formula ignores groups (above).
EXTRA_FLOP_FORMULAS = {
    _aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop,
    _aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flop,
    _aten.convolution_backward: _conv_backward_flop,
}


def count_train_flops(step: Callable[[], torch.Tensor]) -> int:
    """FLOPs (2 per multiply-add) of one forward + backward: ``step()`` returns the loss, this calls ``backward``.

    Counts matmuls, convolutions and attention (GPU and CPU kernels); elementwise ops, norms and the optimizer are
    not counted, as in every MFU convention.
    """
    with FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
        step().backward()
    return counter.get_total_flops()


def _block_macs(n: int, d: int, f: int) -> tuple[int, int]:
    # (linear, attention) MACs per image: qkv (3 D^2) + proj (D^2) + MLP (2 D F) per token; q k^T and attn v 2 N^2 D.
    return n * (4 * d * d + 2 * d * f), 2 * n * n * d


def mae_train_flops(model: nn.Module, mask_ratio: float | None = None) -> dict[str, int]:
    """Hand count of an MAE's training FLOPs per image (``recipes_perf_users.md`` §2.1), split by what runs.

    ``forward_macs`` is the reference's forward: patch embed (all L patches) + encoder blocks on ``1 + L_vis``
    tokens + decoder embed + decoder blocks on ``1 + L`` tokens + prediction on ``1 + L`` tokens;
    ``reference_train_flops`` is its convention, 2 FLOP/MAC x 3 (fwd + bwd) for everything: 58.7 GFLOP for ViT-B/16.
    ``train_flops`` is what mimlab's step executes: the patch embedding of the ``L_vis`` visible patches only, whose
    input needs no gradient (backward = 1 matmul, not 2); the last decoder block's query, output projection and MLP
    and the prediction layer for the ``M = L - L_vis`` masked patches only (keys and values still for all
    ``1 + L``); the fused attention backward recomputing the scores (5 matmuls where the forward has 2).

    Args:
        model: A built :class:`~mimlab.models.algorithms.MAE` (or subclass with the same backbone/neck).
        mask_ratio: Overrides the backbone's.

    Returns:
        Per image: the reference's forward MACs of each part, ``attention_macs``, ``forward_macs``,
        ``reference_train_flops``, ``executed_forward_macs`` and ``train_flops``.
    """
    bb, neck = model.backbone, model.neck
    ratio = bb.mask_ratio if mask_ratio is None else mask_ratio
    L = bb.patch_resolution[0] * bb.patch_resolution[1]
    n_vis = int(L * (1 - ratio))
    n_enc, m = 1 + n_vis, L - n_vis
    d = bb.embed_dims
    p_in = bb.patch_embed.projection.weight[0].numel()  # p * p * C
    dd = neck.decoder_embed.out_features
    out = neck.decoder_pred.out_features
    enc = [_block_macs(n_enc, d, blk.ffn.layers[0][0].out_features) for blk in bb.layers]
    dec = [_block_macs(1 + L, dd, blk.ffn.layers[0][0].out_features) for blk in neck.decoder_blocks]
    parts = dict(
        patch_embed=L * p_in * d,
        encoder=sum(a + b for a, b in enc),
        decoder_embed=n_enc * d * dd,
        decoder=sum(a + b for a, b in dec),
        decoder_pred=(1 + L) * dd * out,
    )
    attn = sum(b for _, b in enc + dec)
    fwd = sum(parts.values())
    # what runs: the last decoder block with M queries (keys, values from 1 + L tokens), patches and prediction cut
    f_last = neck.decoder_blocks[-1].ffn.layers[0][0].out_features
    last_linear = (1 + L) * 2 * dd * dd + m * (2 * dd * dd + 2 * dd * f_last)
    last_attn = 2 * m * (1 + L) * dd
    ex_attn = attn - dec[-1][1] + last_attn
    ex_linear = (fwd - attn) - parts['patch_embed'] - dec[-1][0] - parts['decoder_pred']
    ex_linear += n_vis * p_in * d + last_linear + m * dd * out
    executed = 3 * ex_linear - n_vis * p_in * d + ex_attn * 7 // 2
    return dict(
        parts,
        attention_macs=attn,
        forward_macs=fwd,
        reference_train_flops=6 * fwd,
        executed_forward_macs=ex_linear + ex_attn,
        train_flops=2 * executed,
    )
