"""Training-step benchmark behind ``tools/analysis_tools/benchmark.py``: images/s, step time, data-wait fraction,
FLOPs per image, MFU and peak memory of a config's training step.

Everything the tool prints is computed here so tests can check it: model FLOPs per image of the workload that
actually runs (:func:`~mimlab.analysis.flops.count_train_flops`, fwd + bwd), a matmul peak measured on the same device
(:func:`~mimlab.analysis.device.matmul_peak`, the MFU denominator), step-time statistics, the fraction of a step spent
waiting for data, and peak memory. A :class:`Reference` (another implementation of the same model, e.g. mmpretrain's,
defined by the tool) is timed in the same process on the same batch with the same weights, taking turns, so the ratio
is measured side by side.

Legend: ``B`` batch, ``H x W`` image.
"""

import contextlib
import copy
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mimlab.apis import build_model_without_pretrained, train_image_size

from .device import matmul_peak, peak_memory_mb, reset_peak_memory, sync
from .flops import count_train_flops


@dataclass(frozen=True)
class Reference:
    """Another implementation of the same model, timed side by side with mimlab's.

    mimlab defines none itself: ``tools/analysis_tools/mmpretrain_reference.py`` defines mmpretrain 1.2.0's.

    Attributes:
        name: The results' ``reference`` entry.
        label: What the report calls it (e.g. with its version).
        build: ``build(model)`` -> the other implementation of ``model``, with its weights; it trains through the same
            ``train_step(data, optim_wrapper)`` on the same uint8 batch.
        optim_wrapper: Keys that replace the config's ``optim_wrapper`` keys for the reference (e.g. its recipe's
            ``constructor`` and ``paramwise_cfg``); the precision is set as for mimlab's model.
    """

    name: str
    label: str
    build: Callable[[nn.Module], nn.Module]
    optim_wrapper: dict = field(default_factory=dict)


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


def _optim_wrapper(model: nn.Module, optim_cfg: dict, amp: str, device: torch.device, overrides: dict | None = None):
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    cfg = copy.deepcopy(dict(optim_cfg))
    cfg.update(copy.deepcopy(overrides or {}))  # a reference's own recipe (constructor, paramwise_cfg)
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
    reference: Reference | None = None,
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
        reference: Another implementation of the model to time on the same synthetic batch, one step of each in
            turn (:class:`Reference`).
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
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed:
        if reference is not None or compile:
            raise ValueError('a multi-process benchmark times mimlab alone, without --reference or --compile')
        count_flops = False  # the FLOP counter calls model.loss directly, outside the wrapper's hooks
        model = _wrap(cfg, model, dev)
    optim_wrapper = _optim_wrapper(model, cfg.optim_wrapper, amp, dev)
    if compile:
        # compile the loss only: model.state_dict() keeps its keys (no `_orig_mod.` prefix in checkpoints)
        model.loss = torch.compile(model.loss)

    synthetic = synthetic_batch_for(cfg, getattr(model, 'module', model), bs)
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
    if reference is not None:
        if not isinstance(reference, Reference):
            raise TypeError(f'reference must be a Reference or None, got {reference!r}')
        ref = reference.build(model).to(dev).train()  # same weights, before any step
        ref_wrapper = _optim_wrapper(ref, cfg.optim_wrapper, amp, dev, reference.optim_wrapper)
        ref_batches = _repeat(synthetic)

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
    if distributed:
        _per_rank(result, model, optim_wrapper)
    if ref is not None:
        result['reference'] = reference.name
        result['reference_label'] = reference.label
        result['reference_step_time'] = ref_timing['step_time']
        result['reference_step_times'] = ref_timing['step_times']
        result['reference_images_per_s'] = bs / ref_timing['step_time']
        result['reference_peak_memory_mb'] = ref_peak
        if data == 'synthetic':
            # the model alone on both sides: same batch, same initial weights, same optimizer settings
            result['speed_ratio'] = ref_timing['step_time'] / timing['step_time']
    return result


def _wrap(cfg, model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped as a multi-process run wraps it: ``cfg.model_wrapper_cfg`` (e.g. ``FullyShardWrapper``),
    else mmengine's DDP."""
    from mmengine.model import MMDistributedDataParallel

    from mimlab.registry import MODEL_WRAPPERS

    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
    wrapper['type'] = wrapper['type'].removeprefix('mimlab.')
    wrapper_type = MODEL_WRAPPERS.get(wrapper['type'])
    if wrapper_type is None:
        raise ValueError(f'model_wrapper_cfg.type={wrapper["type"]!r} is not a registered model wrapper')
    if issubclass(wrapper_type, MMDistributedDataParallel):
        wrapper['device_ids'] = [device.index or 0] if device.type == 'cuda' else None
    return MODEL_WRAPPERS.build(wrapper, default_args=dict(module=model))


def _per_rank(result: dict, model: nn.Module, optim_wrapper) -> None:
    """Add every rank's step time, peak memory and held bytes (parameters + optimizer state from the local shards,
    between steps: the optim wrapper frees the gradients after each step) to ``result`` as lists indexed by rank,
    and the wrapper's name."""
    import torch.distributed as dist

    from mimlab.engine.parallel import local_state_bytes

    mine = dict(
        step_time=result['step_time'],
        peak_memory_mb=result['peak_memory_mb'],
        state_mb=local_state_bytes(model, optim_wrapper.optimizer)['total'] / 2**20,
    )
    ranks = [None] * dist.get_world_size()
    dist.all_gather_object(ranks, mine)
    result['wrapper'] = type(model).__name__
    result['world_size'] = len(ranks)
    for key in mine:
        result[f'rank_{key}'] = [r[key] for r in ranks]


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
    if 'world_size' in result:
        lines.append(f'{result["world_size"]} processes, model wrapped by {result["wrapper"]}; per rank:')
        for rank, (t, peak, held) in enumerate(
            zip(result['rank_step_time'], result['rank_peak_memory_mb'], result['rank_state_mb'], strict=True)
        ):
            lines.append(
                f'  rank {rank}: step {t * 1e3:.1f} ms, peak memory {peak:.0f} MiB, '
                f'weights + optimizer state held {held:.1f} MiB'
            )
    if 'reference' in result:
        name = result['reference']
        lines.append(
            f'{result.get("reference_label", name):<19} {result["reference_images_per_s"]:.1f} images/s, '
            f'step {result["reference_step_time"] * 1e3:.1f} ms, '
            f'peak memory {result["reference_peak_memory_mb"]:.0f} MiB'
        )
        if 'speed_ratio' in result:
            lines.append(f'speed ratio         {result["speed_ratio"]:.3f} (mimlab images/s / {name} images/s)')
    return '\n'.join(lines)
