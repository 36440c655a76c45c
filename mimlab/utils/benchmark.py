"""Training-step and input-pipeline benchmarks behind ``tools/analysis_tools/benchmark*.py``.

Everything a benchmark prints is computed here so tests can check it: model FLOPs per image of the workload that
actually runs (counted with ``torch.utils.flop_counter.FlopCounterMode``, fwd + bwd), a matmul peak measured on the
same device (the MFU denominator), step-time statistics, the fraction of a step spent waiting for data, and peak
memory. ``reference='mmpretrain'`` runs the same model (same arch, same weights, same batch) through mmpretrain 1.2.0
in the same process, so the ratio is measured side by side.

Legend: ``B`` batch, ``H x W`` image, ``L`` patches, ``N`` tokens, ``D`` width, ``F`` MLP hidden width,
``P = p * p * 3`` pixels per patch.
"""

import contextlib
import copy
import functools
import math
import os
import os.path as osp
import resource
import statistics
import time
from collections.abc import Callable, Iterable

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

# ----------------------------------------------------------------------------------------------------------- FLOPs

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


# ---------------------------------------------------------------------------------------------- device measures


def sync(device: torch.device) -> None:
    """Wait for the device (benchmark timing only; never called inside a training step)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, n: int | None = None, repeats: int = 5):
    """Measured dense matmul throughput (FLOP/s) on ``device``: the best of ``repeats`` timings of an n x n matmul.

    Args:
        device: Where to measure.
        dtype: float32 (TF32 follows ``torch.backends.cuda.matmul.allow_tf32``), bfloat16 or float16.
        n: Matrix side; 8192 on CUDA, 1024 on CPU by default.
        repeats: Timed repetitions (after one warm-up).

    Returns:
        FLOP/s, ``2 n^3 / best time``.
    """
    n = n or (8192 if device.type == 'cuda' else 1024)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    inner = 10 if device.type == 'cuda' else 1
    best = math.inf
    for i in range(repeats + 1):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b)
        sync(device)
        if i:  # the first round warms up the kernel / allocator
            best = min(best, (time.perf_counter() - t0) / inner)
    return 2 * n**3 / best


def reset_peak_memory(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: max allocated since the last reset. CPU: the process's peak resident set (lifetime, not resettable)."""
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# ------------------------------------------------------------------------------------------------ training step


def _build_in_mmpretrain(cfg: dict, model: nn.Module) -> nn.Module:
    """Build ``cfg`` with mmpretrain 1.2.0's registry (ImageNet mean/std, BGR->RGB as mimlab's preprocessor) and load
    ``model``'s weights into it strictly."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS as PT_MODELS
    from mmpretrain.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    cfg = dict(
        cfg,
        data_preprocessor=dict(
            type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
        ),
    )
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ref = PT_MODELS.build(cfg)
    ref.load_state_dict(model.state_dict(), strict=True)
    return ref


def build_mmpretrain_mae(model: nn.Module) -> nn.Module:
    """The same MAE built from mmpretrain 1.2.0 (test-time reference only), with ``model``'s weights loaded strictly.

    Raises:
        ImportError: mmpretrain is not installed.
        TypeError: ``model`` is not an MAE with a plain decoder.
    """
    if type(model).__name__ != 'MAE' or model.target_generator is not None:
        raise TypeError(f'--reference mmpretrain supports MAE only, not {type(model).__name__}')
    bb, neck, head = model.backbone, model.neck, model.head
    arch = dict(
        embed_dims=bb.embed_dims,
        num_layers=bb.num_layers,
        num_heads=bb.num_heads,
        feedforward_channels=bb.layers[0].ffn.layers[0][0].out_features,
    )
    dd = neck.decoder_embed.out_features
    cfg = dict(
        type='MAE',
        backbone=dict(
            type='MAEViT',
            arch=arch,
            img_size=bb.patch_resolution[0] * bb.patch_size,
            patch_size=bb.patch_size,
            mask_ratio=bb.mask_ratio,
        ),
        neck=dict(
            type='MAEPretrainDecoder',
            num_patches=neck.num_patches,
            patch_size=bb.patch_size,
            embed_dim=bb.embed_dims,
            decoder_embed_dim=dd,
            decoder_depth=len(neck.decoder_blocks),
            decoder_num_heads=neck.decoder_blocks[0].attn.num_heads,
            mlp_ratio=neck.decoder_blocks[0].ffn.layers[0][0].out_features // dd,
        ),
        head=dict(
            type='MAEPretrainHead',
            norm_pix=head.norm_pix,
            patch_size=head.patch_size,
            loss=dict(type='PixelReconstructionLoss', criterion=head.loss_module.criterion),
        ),
    )
    return _build_in_mmpretrain(cfg, model)


def build_mmpretrain_mixmim(model: nn.Module) -> nn.Module:
    """The same MixMIM built from mmpretrain 1.2.0 (test-time reference only), with ``model``'s weights loaded strictly.

    mmpretrain's decoder LayerNorms use eps 1e-6 where mimlab follows the official 1e-5; the timing does not depend on
    it. Raises ``TypeError`` for other models.
    """
    if type(model).__name__ != 'MixMIM' or model.target_generator is not None:
        raise TypeError(f'expected a plain MixMIM, got {type(model).__name__}')
    bb, neck = model.backbone, model.neck
    dd = neck.decoder_embed.out_features
    cfg = dict(
        type='MixMIM',
        backbone=dict(
            type='MixMIMPretrainTransformer',
            arch=dict(embed_dims=bb.embed_dims, depths=bb.depths, num_heads=bb.num_heads),
            img_size=bb.patch_resolution[0] * bb.patch_size,
            patch_size=bb.patch_size,
            window_size=[layer.window_size for layer in bb.layers],
            mask_ratio=bb.mask_ratio,
        ),
        neck=dict(
            type='MixMIMPretrainDecoder',
            num_patches=neck.num_patches,
            encoder_stride=bb.encoder_stride,
            embed_dim=bb.num_features,
            decoder_embed_dim=dd,
            decoder_depth=len(neck.decoder_blocks),
            decoder_num_heads=neck.decoder_blocks[0].attn.num_heads,
            mlp_ratio=neck.decoder_blocks[0].ffn.layers[0][0].out_features // dd,
        ),
        head=dict(
            type='MixMIMPretrainHead',
            norm_pix=model.head.norm_pix,
            loss=dict(type='PixelReconstructionLoss', criterion=model.head.loss_module.criterion),
        ),
    )
    return _build_in_mmpretrain(cfg, model)


def build_mmpretrain_reference(model: nn.Module) -> nn.Module:
    """mmpretrain 1.2.0's build of the same algorithm (MAE or MixMIM) with ``model``'s weights."""
    builders = {'MAE': build_mmpretrain_mae, 'MixMIM': build_mmpretrain_mixmim}
    if type(model).__name__ not in builders:
        raise TypeError(f'--reference mmpretrain supports {sorted(builders)}, not {type(model).__name__}')
    return builders[type(model).__name__](model)


def train_image_size(cfg, model: nn.Module) -> tuple[int, int]:
    """(H, W) of the training images: the train pipeline's crop/resize ``scale`` (or a mask generator's
    ``input_size``), else the ViT's patch grid, else 224."""
    pipeline = ((cfg.get('train_dataloader') or {}).get('dataset') or {}).get('pipeline') or []
    for t in pipeline:
        size = t.get('scale', t.get('input_size')) if isinstance(t, dict) else None
        if isinstance(size, int):
            return size, size
        if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, int) for v in size):
            return int(size[1]), int(size[0])  # mmcv's scale is (w, h)
    bb = getattr(model, 'backbone', None)
    if hasattr(bb, 'patch_resolution') and hasattr(bb, 'patch_size'):
        return bb.patch_resolution[0] * bb.patch_size, bb.patch_resolution[1] * bb.patch_size
    return 224, 224


def synthetic_batch_for(
    cfg, model: nn.Module, batch_size: int, seed: int = 0, image_size: tuple[int, int] | None = None
) -> dict:
    """A synthetic uint8 batch for ``cfg``'s model: images at the train pipeline's size (or ``image_size``, (H, W)),
    per-sample masks drawn by the pipeline's mask generator (SimMIM, A2MIM), random labels for classifiers;
    ``data_samples=None`` when the model needs none (MAE, MixMIM). Not normalised: pass it through
    ``model.data_preprocessor`` as a training step does."""
    from mimlab.registry import TRANSFORMS
    from mimlab.structures import DataSample

    h, w = image_size or train_image_size(cfg, model)
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, 256, (batch_size, 3, h, w), dtype=torch.uint8, generator=g)
    pipeline = ((cfg.get('train_dataloader') or {}).get('dataset') or {}).get('pipeline') or []
    mask_gens = [
        TRANSFORMS.build(copy.deepcopy(t)) for t in pipeline if str(t.get('type', '')).endswith('MaskGenerator')
    ]
    head = (cfg.model.get('head') or {}) if isinstance(cfg.model, dict) else {}
    num_classes = head.get('num_classes') if isinstance(head, dict) else None
    if not mask_gens and not num_classes:
        return dict(inputs=inputs, data_samples=None)
    state = np.random.get_state()
    np.random.seed(seed)
    samples = []
    for _ in range(batch_size):
        sample = DataSample()
        results = dict(img=np.zeros((h, w, 3), np.uint8), img_shape=(h, w))
        for gen in mask_gens:
            results = gen(results)
        if 'mask' in results:
            sample.set_mask(results['mask'])
        if num_classes:
            sample.set_gt_label(int(torch.randint(0, int(num_classes), (), generator=g)))
        samples.append(sample)
    np.random.set_state(state)
    return dict(inputs=inputs, data_samples=samples)


def build_model_without_pretrained(cfg) -> nn.Module:
    """``cfg.model`` built and initialised as mmengine's Runner builds it (a top-level ``data_preprocessor`` moved
    into the model), minus any ``Pretrained`` init: speed and FLOPs do not depend on the weights. On the CPU."""
    from mimlab.registry import MODELS

    model_cfg = _without_pretrained(copy.deepcopy(cfg.model))
    if cfg.get('data_preprocessor') is not None:  # what mmengine's Runner does with a top-level preprocessor
        model_cfg.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def _without_pretrained(cfg):
    """A copy of a model config without ``init_cfg=dict(type='Pretrained', ...)`` (speed needs no weights)."""
    if isinstance(cfg, dict):
        out = {}
        for k, v in cfg.items():
            if k == 'init_cfg' and isinstance(v, dict) and v.get('type') == 'Pretrained':
                continue
            out[k] = _without_pretrained(v)
        return out
    if isinstance(cfg, list):
        return [_without_pretrained(v) for v in cfg]
    return cfg


# mmpretrain 1.2.0's MAE recipe: mmengine's default constructor (no fused kernel) with these exemptions
_MMPRETRAIN_PARAMWISE = dict(
    custom_keys={
        'ln': dict(decay_mult=0.0),
        'bias': dict(decay_mult=0.0),
        'pos_embed': dict(decay_mult=0.0),
        'mask_token': dict(decay_mult=0.0),
        'cls_token': dict(decay_mult=0.0),
    }
)


def _optim_wrapper(model: nn.Module, optim_cfg: dict, amp: str, device: torch.device, reference: bool = False):
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    cfg = copy.deepcopy(dict(optim_cfg))
    if reference:
        cfg['constructor'] = 'DefaultOptimWrapperConstructor'
        cfg['paramwise_cfg'] = _MMPRETRAIN_PARAMWISE
    if amp != 'none' and device.type == 'cuda':
        cfg['type'] = 'AmpOptimWrapper'
        cfg['dtype'] = 'bfloat16' if amp == 'bf16' else 'float16'
        # bf16 needs no loss scaling (and a GradScaler adds an inf check, a host sync, per step)
        cfg['loss_scale'] = dict(enabled=False) if amp == 'bf16' else 'dynamic'
    else:
        cfg['type'] = 'OptimWrapper'
        cfg.pop('loss_scale', None)
        cfg.pop('dtype', None)
    with DefaultScope.overwrite_default_scope('mimlab'):
        return build_optim_wrapper(model, cfg)


def _cpu_autocast(amp: str, device: torch.device):
    # mmengine's AmpOptimWrapper is CUDA-only; on CPU a bf16 run is an outer autocast around the step.
    if device.type == 'cpu' and amp == 'bf16':
        return torch.autocast('cpu', dtype=torch.bfloat16)
    return contextlib.nullcontext()


def time_train_steps(
    model: nn.Module,
    optim_wrapper,
    batches: Iterable[dict],
    steps: int,
    warmup: int,
    device: torch.device,
    amp: str = 'none',
) -> dict[str, float]:
    """Run ``warmup + steps`` calls of ``model.train_step`` and time each measured one.

    Returns:
        ``step_time`` (median s), ``step_times`` (list), ``data_wait_fraction`` (time blocked on ``next(batches)``
        over total, measured steps), ``loss`` (last).
    """
    it = iter(batches)
    times, waits = [], []
    loss = None
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        data = next(it)
        t1 = time.perf_counter()
        with _cpu_autocast(amp, device):
            log_vars = model.train_step(data, optim_wrapper)
        sync(device)
        t2 = time.perf_counter()
        if i >= warmup:
            times.append(t2 - t0)
            waits.append(t1 - t0)
        loss = log_vars['loss']
    return dict(
        step_time=statistics.median(times),
        step_times=times,
        data_wait_fraction=sum(waits) / sum(times),
        loss=float(loss.detach()),
    )


def _repeat(batch: dict):
    while True:
        yield batch


def benchmark_training(
    cfg,
    batch_size: int | None = None,
    amp: str = 'none',
    compile: bool = False,
    steps: int = 10,
    warmup: int = 2,
    data: str = 'synthetic',
    reference: str | None = None,
    device: str | None = None,
    count_flops: bool = True,
    channels_last: bool | None = None,
) -> dict:
    """Benchmark ``cfg``'s training step.

    Args:
        cfg: An mmengine ``Config`` with ``model``, ``optim_wrapper`` and (for ``data='files'``) ``train_dataloader``.
        batch_size: Overrides ``train_dataloader.batch_size``.
        amp: 'bf16', 'fp16' or 'none' (fp32).
        compile: ``torch.compile`` the model's ``loss`` (state-dict keys stay clean: the module is not wrapped).
        steps: Measured steps.
        warmup: Unmeasured steps first (and compilation).
        data: 'synthetic' (one uint8 batch reused: the model alone) or 'files' (the config's dataloader, so the
            data-wait fraction is real).
        reference: 'mmpretrain' to time the same MAE or MixMIM in mmpretrain 1.2.0 on the same synthetic batch.
        device: 'cuda' or 'cpu'; CUDA when available by default.
        count_flops: Count FLOPs per image (one extra fwd + bwd).
        channels_last: Run the model in channels_last format (``to_channels_last``); None: as the config's
            ``ChannelsLastHook`` would (on CUDA, or with ``on_cpu=True``).

    Returns:
        A dict: ``images_per_s``, ``step_time``, ``data_wait_fraction``, ``flops_per_image``, ``peak_flops``,
        ``mfu``, ``peak_memory_mb``, ``batch_size``, ``device``, ``torch``, and ``reference_*`` plus
        ``speed_ratio`` (mimlab images/s over the reference's) with a reference.
    """
    dev = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    loader_cfg = cfg.get('train_dataloader') or {}
    bs = int(batch_size or loader_cfg.get('batch_size', 8))
    model = build_model_without_pretrained(cfg)
    if channels_last is None:  # as the hook would do in a run
        hooks = [h for h in cfg.get('custom_hooks') or [] if h.get('type') == 'ChannelsLastHook']
        channels_last = bool(hooks) and (dev.type == 'cuda' or bool(hooks[0].get('on_cpu', False)))
    if channels_last:
        from mimlab.engine.hooks import to_channels_last

        to_channels_last(model)
    model.to(dev).train()
    optim_wrapper = _optim_wrapper(model, cfg.optim_wrapper, amp, dev)
    if compile:
        # compile the loss only: model.state_dict() keeps its keys (no `_orig_mod.` prefix in checkpoints)
        model.loss = torch.compile(model.loss)

    synthetic = synthetic_batch_for(cfg, model, bs)
    if data == 'synthetic':
        batches = _repeat(synthetic)
        first = synthetic
    elif data == 'files':
        batches = _loader_batches(cfg, bs)
        first = next(batches)  # also starts the workers, outside the timing
    else:
        raise ValueError(f'data must be "synthetic" or "files", got {data!r}')

    result = dict(
        batch_size=bs,
        device=str(dev),
        torch=torch.__version__,
        amp=amp,
        compile=compile,
        data=data,
        channels_last=bool(channels_last),
    )
    if count_flops:
        flop_model = model.loss._torchdynamo_orig_callable if compile else model.loss
        pre = model.data_preprocessor(copy.copy(first), True)
        with _cpu_autocast(amp, dev):
            flops = count_train_flops(lambda: model.parse_losses(flop_model(pre['inputs'], pre['data_samples']))[0])
        model.zero_grad(set_to_none=True)
        result['flops_per_image'] = flops / bs
    ref = None
    if reference == 'mmpretrain':
        ref = build_mmpretrain_reference(model).to(dev).train()  # same weights, before any step
        ref_wrapper = _optim_wrapper(ref, cfg.optim_wrapper, amp, dev, reference=True)
        ref_batches = _repeat(synthetic)
    elif reference is not None:
        raise ValueError(f'reference must be "mmpretrain" or None, got {reference!r}')

    reset_peak_memory(dev)
    if ref is None:
        timing = time_train_steps(model, optim_wrapper, batches, steps, warmup, dev, amp)
    else:
        # alternate one step of each, so load from other processes on a shared machine hits both alike
        ours, theirs, peak, ref_peak = [], [], 0.0, 0.0
        for _ in range(warmup + steps):
            before = _allocated_mb(dev)
            reset_peak_memory(dev)
            ours.append(time_train_steps(model, optim_wrapper, batches, 1, 0, dev, amp))
            peak = max(peak, _own_peak_mb(dev, before, model, optim_wrapper))
            before = _allocated_mb(dev)
            reset_peak_memory(dev)
            theirs.append(time_train_steps(ref, ref_wrapper, ref_batches, 1, 0, dev, amp))
            ref_peak = max(ref_peak, _own_peak_mb(dev, before, ref, ref_wrapper))
        ours, theirs = ours[warmup:], theirs[warmup:]
        timing = _merge(ours)
        ref_timing = _merge(theirs)
    result.update(timing)
    result['peak_memory_mb'] = peak_memory_mb(dev) if ref is None else peak
    result['images_per_s'] = bs / timing['step_time']
    peak_dtype = torch.float32 if amp == 'none' else (torch.bfloat16 if amp == 'bf16' else torch.float16)
    result['peak_flops'] = matmul_peak(dev, peak_dtype)
    if count_flops:
        result['mfu'] = result['flops_per_image'] * result['images_per_s'] / result['peak_flops']
    if ref is not None:
        result['reference'] = 'mmpretrain'
        result['reference_step_time'] = ref_timing['step_time']
        result['reference_step_times'] = ref_timing['step_times']
        result['reference_images_per_s'] = bs / ref_timing['step_time']
        result['reference_peak_memory_mb'] = ref_peak
        if data == 'synthetic':
            # the model alone on both sides: same batch, same initial weights, same optimizer settings
            result['speed_ratio'] = ref_timing['step_time'] / timing['step_time']
    return result


def _allocated_mb(device: torch.device) -> float:
    return torch.cuda.memory_allocated(device) / 2**20 if device.type == 'cuda' else 0.0


def _static_mb(model: nn.Module, optim_wrapper) -> float:
    """Parameters, buffers and optimizer state of one model (held between steps)."""
    tensors = list(model.parameters()) + list(model.buffers())
    for state in optim_wrapper.optimizer.state.values():
        tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def _own_peak_mb(device: torch.device, before_mb: float, model: nn.Module, optim_wrapper) -> float:
    """Peak memory of one model's step as if it were alone on the device: CUDA: what the step allocated on top of
    what was held before it (both models' weights and states), plus this model's own weights and states; CPU: the
    process's peak RSS (both models together)."""
    if device.type != 'cuda':
        return peak_memory_mb(device)
    return peak_memory_mb(device) - before_mb + _static_mb(model, optim_wrapper)


def _merge(timings: list[dict]) -> dict:
    times = [t['step_times'][0] for t in timings]
    waits = [t['data_wait_fraction'] * t['step_times'][0] for t in timings]
    return dict(
        step_time=statistics.median(times),
        step_times=times,
        data_wait_fraction=sum(waits) / sum(times),
        loss=timings[-1]['loss'],
    )


def _loader_batches(cfg, batch_size: int):
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg['batch_size'] = batch_size
    loader_cfg.setdefault('collate_fn', dict(type='mimlab.default_collate'))
    if loader_cfg.get('num_workers', 0) == 0:
        loader_cfg['persistent_workers'] = False
    with DefaultScope.overwrite_default_scope('mimlab'):
        loader = Runner.build_dataloader(loader_cfg, seed=0)
    while True:
        yield from loader


def format_training(result: dict) -> str:
    """The report ``tools/analysis_tools/benchmark.py`` prints."""
    lines = [
        f'device {result["device"]}, torch {result["torch"]}, batch {result["batch_size"]}, amp {result["amp"]}, '
        f'compile {result["compile"]}, data {result["data"]}, channels_last {result.get("channels_last", False)}',
        f'images/s            {result["images_per_s"]:.1f}',
        f'step time (median)  {result["step_time"] * 1e3:.1f} ms',
        f'data-wait fraction  {result["data_wait_fraction"]:.3f}',
    ]
    if 'flops_per_image' in result:
        lines += [
            f'model FLOPs/image   {result["flops_per_image"] / 1e9:.3f} GFLOP (fwd+bwd, the workload that runs)',
            f'matmul peak         {result["peak_flops"] / 1e12:.2f} TFLOP/s (measured)',
            f'MFU                 {100 * result["mfu"]:.1f} %',
        ]
    lines.append(f'peak memory         {result["peak_memory_mb"]:.0f} MiB')
    if 'reference' in result:
        lines.append(
            f'mmpretrain 1.2.0    {result["reference_images_per_s"]:.1f} images/s, '
            f'step {result["reference_step_time"] * 1e3:.1f} ms, '
            f'peak memory {result["reference_peak_memory_mb"]:.0f} MiB'
        )
        if 'speed_ratio' in result:
            lines.append(f'speed ratio         {result["speed_ratio"]:.3f} (mimlab images/s / mmpretrain images/s)')
    return '\n'.join(lines)


# -------------------------------------------------------------------------------------------------- input data


def make_jpegs(
    out_dir: str, num: int, size: tuple[int, int] = (500, 375), quality: int = 90, seed: int = 0
) -> list[str]:
    """Write ``num`` JPEGs of ``size = (w, h)`` rendered from the built-in dataset: ImageNet-like files to read.

    The built-in renderer draws squares; each image is drawn at ``max(w, h)`` and cut to ``h x w``.

    Returns:
        The file paths, in index order.
    """
    from mimlab.datasets.builtin import BuiltinDataset

    w, h = size
    ds = BuiltinDataset(split='train', num_samples=num, img_size=max(w, h), seed=seed, lazy_init=True)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for idx in range(num):
        img, _ = ds.render(idx)
        path = osp.join(out_dir, f'{idx:06d}.jpg')
        if not cv2.imwrite(path, img[:h, :w], [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
            raise OSError(f'could not write {path}')
        paths.append(path)
    return paths


class _PipelineDataset(torch.utils.data.Dataset):
    def __init__(self, paths: list[str], pipeline: list, labels: bool = True):
        from mmcv.transforms import Compose
        from mmengine.registry import DefaultScope

        self.paths, self.labels = paths, labels
        with DefaultScope.overwrite_default_scope('mimlab'):
            self.pipeline = Compose(copy.deepcopy(pipeline))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, idx: int):
        results = dict(img_path=self.paths[idx], sample_idx=idx)
        if self.labels:
            results['gt_label'] = idx % 1000  # as an ImageNet dataset gives every sample its class
        out = self.pipeline(results)
        if out is None:
            raise RuntimeError(f'pipeline dropped {self.paths[idx]}')
        return out


def _worker_init(worker_id: int) -> None:
    np.random.seed(1000 + worker_id)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def mmpretrain_pipeline(scale: int = 224) -> list[dict]:
    """mmpretrain 1.2.0's MAE pretraining pipeline (``imagenet_bs512_mae.py``), scoped to mmpretrain."""
    return [
        dict(type='mmpretrain.LoadImageFromFile'),
        dict(
            type='mmpretrain.RandomResizedCrop',
            scale=scale,
            crop_ratio_range=(0.2, 1.0),
            backend='pillow',
            interpolation='bicubic',
        ),
        dict(type='mmpretrain.RandomFlip', prob=0.5),
        dict(type='mmpretrain.PackInputs'),
    ]


def benchmark_pipelines(
    pipelines: dict[str, list[dict]],
    paths: list[str],
    workers: int = 0,
    batch_size: int = 32,
    repeats: int = 1,
    collates: dict | None = None,
    labels: bool = True,
) -> dict[str, dict]:
    """Images/s of each pipeline over ``paths`` through a ``DataLoader``, collated as its project collates.

    The pipelines take turns, one pass each per round, so load from other processes on a shared machine hits them
    alike; the median pass of each counts.

    Args:
        pipelines: Name -> transform configs (mimlab scope unless prefixed, e.g. ``mmpretrain.``).
        paths: Image files; each sample starts as ``dict(img_path=...)``.
        workers: DataLoader workers per pipeline; 0 runs in this process.
        batch_size: Collated batch size (collation is part of the measured work).
        repeats: Rounds.
        collates: Name -> collate function, or its config (``dict(type='mimlab.default_collate')``, looked up as
            mmengine's Runner does); pipelines not named use mmengine's ``default_collate`` (mmpretrain's configs).
        labels: Give each sample a ``gt_label`` (``index % 1000``), as an ImageNet dataset does; the label tensors
            then cross from the workers with the images.

    Returns:
        Name -> ``images_per_s``, ``images_per_s_per_core`` (divided by ``max(workers, 1)``), ``pass_times``,
        ``num_images``.
    """
    from mmengine.dataset import default_collate
    from mmengine.registry import FUNCTIONS

    collates = dict(collates or {})
    for name, fn in collates.items():
        if isinstance(fn, dict):
            found = FUNCTIONS.get(fn['type'])
            if found is None:
                raise KeyError(f'collate function {fn["type"]!r} of {name!r} is not registered')
            collates[name] = functools.partial(found, **{k: v for k, v in fn.items() if k != 'type'})
    if any(t['type'].startswith('mmpretrain.') for p in pipelines.values() for t in p):
        from mmpretrain.utils import register_all_modules

        register_all_modules(init_default_scope=False)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    loaders = {}
    for name, pipeline in pipelines.items():
        loaders[name] = torch.utils.data.DataLoader(
            _PipelineDataset(paths, pipeline, labels),
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=collates.get(name, default_collate),
            worker_init_fn=_worker_init if workers else None,
            persistent_workers=workers > 0,
        )
        if workers:
            next(iter(loaders[name]))  # start the workers outside the timing
    np.random.seed(0)
    times = {name: [] for name in pipelines}
    for _ in range(repeats):
        for name, loader in loaders.items():
            t0 = time.perf_counter()
            n = sum(len(batch['inputs']) for batch in loader)
            times[name].append(time.perf_counter() - t0)
    out = {}
    for name, ts in times.items():
        ips = len(paths) / statistics.median(ts)
        out[name] = dict(images_per_s=ips, images_per_s_per_core=ips / max(workers, 1), pass_times=ts, num_images=n)
    return out


def benchmark_pipeline(pipeline: list[dict], paths: list[str], **kwargs) -> dict:
    """:func:`benchmark_pipelines` for one pipeline."""
    return benchmark_pipelines(dict(pipeline=pipeline), paths, **kwargs)['pipeline']
