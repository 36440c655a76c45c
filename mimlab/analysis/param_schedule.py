"""A config's learning rate (momentum, weight decay) at every training iteration, without training; behind
``tools/visualization/vis_scheduler.py``.

The values come from mmengine's own schedulers, built and stepped as its ``Runner`` does:

- the optim wrapper is built from ``optim_wrapper`` (``AmpOptimWrapper`` as a plain ``OptimWrapper``: precision does
  not touch the schedule), on a stand-in module when the param groups' settings cannot depend on parameter names,
  else on the config's model (layer decay, ``lr_mult``, ``custom_keys``, ``norm_decay_mult``, other constructors);
- ``auto_scale_lr.enable`` scales every param group's lr by ``ngpus * batch_size / base_batch_size`` (not the
  wrapper's base settings: mmengine's ``Runner.scale_lr`` leaves them, so the logged ``base_lr`` stays unscaled);
- a scheduler without ``end`` ends at ``max_epochs`` (``by_epoch``) or ``max_iters``; ``convert_to_iter_based``
  converts epochs with ``epoch_length = len(train_dataloader)`` on rank 0 (:func:`iters_per_epoch`);
- per iteration the value is read before the schedulers step (what that iteration's update uses); iteration-based
  schedulers step after every iteration, epoch-based ones after every epoch.

A param group's values only depend on its settings (lr, weight decay, betas...), so groups with equal settings are
scheduled once. With more than one group, mmengine's ``OptimWrapper`` also schedules its base settings (the
optimizer's ``lr`` etc. as configured): the log's ``base_lr``. The log's ``lr`` is param group 0's.

Legend: ``T`` training iterations.
"""

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

PARAMS = ('lr', 'momentum', 'weight_decay')


def iters_per_epoch(
    dataset_size: int, batch_size: int, ngpus: int = 1, drop_last: bool = False, infinite: bool = False
) -> int:
    """``len(train_dataloader)`` on rank 0 of ``ngpus`` processes: the ``epoch_length`` mmengine's Runner converts
    epoch-based schedulers with.

    mmengine's ``DefaultSampler`` gives rank 0 ``ceil(N / ngpus)`` samples (with or without ``round_up``); its
    ``InfiniteSampler`` reports the whole dataset on every rank. Batches: floor with ``drop_last``, else ceil.

    Args:
        dataset_size: Samples N in the train dataset.
        batch_size: Samples per GPU and iteration.
        ngpus: Processes (GPUs) the run uses.
        drop_last: The train dataloader's ``drop_last``.
        infinite: The sampler is an ``InfiniteSampler``.
    """
    if dataset_size < 1 or batch_size < 1 or ngpus < 1:
        raise ValueError(f'need dataset_size, batch_size, ngpus >= 1, got {dataset_size}, {batch_size}, {ngpus}')
    per_rank = dataset_size if infinite else -(-dataset_size // ngpus)
    n = per_rank // batch_size if drop_last else -(-per_rank // batch_size)
    if n < 1:
        raise ValueError(
            f'{per_rank} samples per GPU make no batch of {batch_size} with drop_last=True: the epoch is empty'
        )
    return n


def train_dataset_size(cfg) -> int:
    """Length of ``cfg.train_dataloader.dataset``, built without its pipeline (the built-in dataset only lists
    specs; an ImageNet tree reads its annotation file or scans its folders).

    Raises:
        ValueError: The dataset cannot be built here (e.g. no data at ``data_root``): pass the size instead.
    """
    from mimlab.registry import DATASETS

    dataset = copy.deepcopy(((cfg.get('train_dataloader') or {}).get('dataset')) or {})
    if not dataset:
        raise ValueError('the config has no train_dataloader.dataset to count: give the dataset size')
    dataset['pipeline'] = []
    try:
        return len(DATASETS.build(dataset))
    except Exception as e:  # noqa: BLE001 - any failure means the same: count it elsewhere
        raise ValueError(
            f'cannot build train_dataloader.dataset ({dataset.get("type")}) to count its samples: {e}. Give the '
            'number of training images instead (--dataset-size N; ImageNet-1k train: 1281167)'
        ) from e


@dataclass
class ParamSchedule:
    """One hyper-parameter's value at every training iteration.

    Attributes:
        param: 'lr', 'momentum' (SGD's momentum or Adam's beta1) or 'weight_decay'.
        curves: Label -> (T,) values, one per distinct curve, the main one first: ``base_<param>`` (the wrapper's
            base settings; ``base_lr = groups 0-1`` when groups 0 and 1 follow it exactly) when the optimizer has
            several param groups, else ``group 0``; then ``groups i, j-k`` for the others.
        total_iters: T.
        iters_per_epoch: ``len(train_dataloader)`` on rank 0; None for an iteration-based loop whose schedulers
            need no epoch length.
        max_epochs: Epochs of an epoch-based loop, None for an iteration-based one.
        dataset_size, ngpus, batch_size, drop_last: What ``iters_per_epoch`` was computed from.
        model_built: The param groups came from the config's model (else from a stand-in module).
    """

    param: str
    curves: dict[str, np.ndarray]
    total_iters: int
    iters_per_epoch: int | None
    max_epochs: int | None
    dataset_size: int | None
    ngpus: int
    batch_size: int
    drop_last: bool
    model_built: bool

    @property
    def main(self) -> np.ndarray:
        """The main curve: the configured value's schedule."""
        return next(iter(self.curves.values()))


def _train_loop(cfg) -> tuple[bool, int]:
    """(epoch-based?, max_epochs or max_iters) of ``cfg.train_cfg``, read as mmengine's Runner builds the loop."""
    from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

    from mimlab.registry import LOOPS

    loop = dict(cfg.get('train_cfg') or {})
    if not loop:
        raise ValueError('the config has no train_cfg: it trains nothing, so it has no schedule')
    if 'type' in loop:
        cls = LOOPS.get(loop['type']) if isinstance(loop['type'], str) else loop['type']
        if isinstance(cls, type) and issubclass(cls, EpochBasedTrainLoop):
            return True, int(loop['max_epochs'])
        if isinstance(cls, type) and issubclass(cls, IterBasedTrainLoop):
            return False, int(loop['max_iters'])
        raise ValueError(f'train_cfg.type={loop["type"]!r} is neither an epoch- nor an iteration-based train loop')
    if 'by_epoch' not in loop:
        raise ValueError('train_cfg has neither a type nor by_epoch: cannot tell how long training runs')
    return (True, int(loop['max_epochs'])) if loop['by_epoch'] else (False, int(loop['max_iters']))


def _needs_model(optim_cfg: dict) -> bool:
    """Whether the param groups' settings depend on parameter names or depths, so the real model is needed."""
    paramwise = dict(optim_cfg.get('paramwise_cfg') or {})
    constructor = optim_cfg.get('constructor', 'DefaultOptimWrapperConstructor')
    if constructor == 'LayerDecayOptimWrapperConstructor':
        # rate 1.0 and no names: two groups, decay and no decay (1-D and no_weight_decay() parameters), both with the
        # base lr; lr_mult / no_weight_decay / weight_decay name parameters of the model
        named = any(paramwise.get(k) for k in ('lr_mult', 'no_weight_decay', 'weight_decay'))
        return named or float(paramwise.get('layer_decay_rate', 1.0)) != 1.0
    if constructor == 'DefaultOptimWrapperConstructor':
        return bool(paramwise)  # no paramwise_cfg: one group with the optimizer's settings
    return True  # another constructor may read anything from the model


def _read(group: dict, param: str) -> float:
    if param == 'momentum':  # as mmengine's OptimWrapper.get_momentum: SGD's momentum or Adam's beta1
        if 'momentum' in group:
            return float(group['momentum'])
        return float(group['betas'][0]) if 'betas' in group else 0.0
    return float(group.get(param, 0.0))  # an optimizer without weight decay: 0


def _groups_label(indices: list[int], width: int = 24) -> str:
    """[5] -> 'group 5'; [0, 1, 2, 5] -> 'groups 0-2, 5'; a long list is cut after ``width`` characters and
    counted: 'groups 0, 3-4, 6-7, ... (37)'."""
    if len(indices) == 1:
        return f'group {indices[0]}'
    parts, start = [], indices[0]
    for prev, cur in zip(indices, [*indices[1:], None]):
        if cur != prev + 1:
            parts.append(str(start) if start == prev else f'{start}-{prev}')
            start = cur
    shown = parts[:1]
    for p in parts[1:]:
        if len(', '.join([*shown, p])) > width:
            return f'groups {", ".join(shown)}, ... ({len(indices)})'
        shown.append(p)
    return f'groups {", ".join(shown)}'


def param_schedule(cfg, dataset_size: int | None = None, ngpus: int = 1, param: str = 'lr') -> ParamSchedule:
    """The value of ``param`` at every training iteration of ``cfg``, as mmengine's Runner would set it.

    Args:
        cfg: A training config (``optim_wrapper``, ``param_scheduler``, ``train_cfg``, ``train_dataloader``).
        dataset_size: Training images; default: the length of the config's train dataset, when it can be built
            here (:func:`train_dataset_size`). Not needed by an iteration-based loop whose schedulers are all
            iteration-based.
        ngpus: Processes (GPUs) the run would use; ``train_dataloader.batch_size`` is per GPU.
        param: One of :data:`PARAMS`.

    Returns:
        A :class:`ParamSchedule`.

    Raises:
        ValueError: An unknown ``param``, a schedule that needs validation metrics (``ReduceOnPlateau``), multiple
            optimizers, or a dataset size that is needed but not given and not countable.
    """
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    from mimlab.apis import build_model_without_pretrained, register_all_modules
    from mimlab.registry import PARAM_SCHEDULERS

    if param not in PARAMS:
        raise ValueError(f'param must be one of {PARAMS}, got {param!r}')
    register_all_modules(init_default_scope=False)
    by_epoch, length = _train_loop(cfg)
    sched_cfgs = cfg.get('param_scheduler') or []
    sched_cfgs = [copy.deepcopy(dict(s)) for s in ([sched_cfgs] if isinstance(sched_cfgs, dict) else sched_cfgs)]
    loader = cfg.get('train_dataloader') or {}
    batch_size, drop_last = int(loader.get('batch_size', 1)), bool(loader.get('drop_last', False))
    epoch_length = None
    if by_epoch or any(s.get('convert_to_iter_based') for s in sched_cfgs):
        if dataset_size is None:
            dataset_size = train_dataset_size(cfg)
        infinite = 'Infinite' in str((loader.get('sampler') or {}).get('type', ''))
        epoch_length = iters_per_epoch(dataset_size, batch_size, ngpus, drop_last, infinite)
    max_epochs, max_iters = (length, length * epoch_length) if by_epoch else (1, length)

    optim_cfg = copy.deepcopy(dict(cfg.optim_wrapper))
    if 'optimizer' not in optim_cfg:
        raise ValueError('optim_wrapper has no optimizer: configs with several optimizers are not supported')
    if optim_cfg.get('type') == 'AmpOptimWrapper':  # mmengine's asserts a GPU; the schedule is the same
        optim_cfg['type'] = 'OptimWrapper'
        optim_cfg.pop('loss_scale', None)
        optim_cfg.pop('dtype', None)
    needs_model = _needs_model(optim_cfg)
    # a 2-D weight and a 1-D bias: the two kinds of parameter a weight-decay rule without names tells apart
    model = build_model_without_pretrained(cfg) if needs_model else nn.Linear(1, 1)
    with DefaultScope.overwrite_default_scope('mimlab'):
        wrapper = build_optim_wrapper(model, optim_cfg)
    scale_cfg = cfg.get('auto_scale_lr') or {}
    if scale_cfg.get('enable', False):  # mmengine's Runner.scale_lr, before the schedulers store initial_lr
        if 'base_batch_size' not in scale_cfg:
            raise ValueError(
                'auto_scale_lr is enabled but the config sets no auto_scale_lr.base_batch_size (the total batch its '
                'lr is meant for); add it with --cfg-options auto_scale_lr.base_batch_size=N'
            )
        ratio = ngpus * batch_size / scale_cfg['base_batch_size']
        for group in wrapper.optimizer.param_groups:
            group['lr'] = group['lr'] * ratio

    # A scheduler sets a group's value from that group's value alone, so one group per distinct starting value is
    # scheduled (ViT-L with layer decay: 26 instead of 52); the wrapper's base settings stay a group of their own.
    index_of: dict[float, int] = {}
    distinct, members = [], []  # settings of each distinct group, and the param-group indices that start like it
    for i, group in enumerate(wrapper.optimizer.param_groups):
        key = _read(group, param)
        if key not in index_of:
            index_of[key] = len(distinct)
            distinct.append({k: copy.deepcopy(v) for k, v in group.items() if k not in ('params', 'param_names')})
            members.append([])
        members[index_of[key]].append(i)
    has_base = wrapper.base_param_settings is not None
    if has_base:
        distinct.append({k: copy.deepcopy(v) for k, v in wrapper.base_param_settings.items() if k != 'params'})
    optimizer = torch.optim.Optimizer(
        [dict(s, params=[torch.zeros(0)]) for s in distinct], copy.deepcopy(wrapper.optimizer.defaults)
    )
    schedulers = []
    for s in sched_cfgs:
        s.setdefault('end', max_epochs if s.get('by_epoch', True) else max_iters)  # the Runner's default end
        sched = PARAM_SCHEDULERS.build(s, default_args=dict(optimizer=optimizer, epoch_length=epoch_length))
        if getattr(sched, 'need_val_args', False):
            raise ValueError(f'{type(sched).__name__} steps on validation metrics: its schedule cannot be drawn')
        schedulers.append(sched)
    per_iter = [s for s in schedulers if not s.by_epoch]
    per_epoch = [s for s in schedulers if s.by_epoch]

    values = np.empty((max_iters, len(distinct)))  # (T, groups)
    with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": there is no optimizer step here
        warnings.simplefilter('ignore', UserWarning)
        it = 0
        for _ in range(max_epochs):
            for _ in range(max_iters // max_epochs):
                values[it] = [_read(g, param) for g in optimizer.param_groups]
                for s in per_iter:
                    s.step()
                it += 1
            for s in per_epoch:
                s.step()

    # one curve per distinct series; groups that follow the base settings exactly join its curve
    seen: list[tuple[np.ndarray, list[int]]] = [(values[:, -1], [])] if has_base else []
    for col, idx in enumerate(members):
        for v, groups in seen:
            if np.array_equal(v, values[:, col]):
                groups.extend(idx)
                break
        else:
            seen.append((values[:, col], list(idx)))
    curves: dict[str, np.ndarray] = {}
    for i, (v, groups) in enumerate(seen):
        label = _groups_label(sorted(groups)) if groups else ''
        if i == 0 and has_base:
            label = f'base_{param} = {label}' if label else f'base_{param}'
        curves[label] = v
    return ParamSchedule(
        param=param,
        curves=curves,
        total_iters=max_iters,
        iters_per_epoch=epoch_length,
        max_epochs=max_epochs if by_epoch else None,
        dataset_size=dataset_size if epoch_length is not None else None,
        ngpus=ngpus,
        batch_size=batch_size,
        drop_last=drop_last,
        model_built=needs_model,
    )


def curve_stats(values: np.ndarray) -> dict:
    """First, peak (and its iteration, 0-based), last value and warmup length of a (T,) curve.

    ``warmup_iters`` counts the iterations up to and including the first one at the peak (within 1e-6 relative),
    0 when the curve starts at its peak: a linear warmup over E iterations gives E.
    """
    peak = float(values.max())
    at = int(np.argmax(values >= peak - abs(peak) * 1e-6))
    warmup = at + 1 if at else 0
    return dict(first=float(values[0]), peak=peak, peak_iter=at, last=float(values[-1]), warmup_iters=warmup)


def format_schedule(schedule: ParamSchedule, name: str = '') -> str:
    """A short report: how T was counted, and first / peak / last value and warmup per curve."""
    s = schedule
    lines = [f'config      {name}'] if name else []
    if s.iters_per_epoch is None:
        lines.append(f'iterations  {s.total_iters} (IterBasedTrainLoop)')
    else:
        rounding = 'floor, drop_last=True' if s.drop_last else 'ceil, drop_last=False'
        per_epoch = (
            f'{s.iters_per_epoch} per epoch = {s.dataset_size} images / ({s.ngpus} GPU{"s" * (s.ngpus > 1)} x '
            f'{s.batch_size}), {rounding}'
        )
        if s.max_epochs is None:
            lines.append(f'iterations  {s.total_iters} (IterBasedTrainLoop; epochs converted at {per_epoch})')
        else:
            lines.append(f'iterations  {s.total_iters} = {s.max_epochs} epochs x {per_epoch}')
    lines.append(f'param groups from {"the config model" if s.model_built else "a stand-in module"}')
    stats = {label: curve_stats(v) for label, v in s.curves.items()}
    width = max(len(label) for label in stats) + 2
    lines.append(f'{s.param:{width}s}{"first":>12s}{"peak":>12s}{"at iter":>9s}{"last":>12s}  warmup')
    for label, st in stats.items():
        warmup = f'{st["warmup_iters"]} iters'
        if st['warmup_iters'] and s.iters_per_epoch:
            epochs = st['warmup_iters'] / s.iters_per_epoch
            warmup += f' ({epochs:.4g} epoch{"s" * (epochs != 1)})'
        lines.append(
            f'{label:{width}s}{st["first"]:12.4g}{st["peak"]:12.4g}{st["peak_iter"]:9d}{st["last"]:12.4g}  {warmup}'
        )
    return '\n'.join(lines)


def plot_schedule(
    schedule: ParamSchedule,
    out: str,
    title: str | None = None,
    style: str | None = None,
    figsize: tuple[float, float] = (12, 7),
) -> str:
    """Plot every curve of ``schedule`` against the iteration (epochs on the top axis) and save it (Agg backend).

    Args:
        schedule: From :func:`param_schedule`.
        out: Image file to write (format from its extension).
        title: Figure title.
        style: A matplotlib style name (``matplotlib.style.available``); mmpretrain's seaborn names such as
            ``whitegrid`` are accepted for ``seaborn-v0_8-whitegrid``.
        figsize: (width, height) in inches.

    Returns:
        ``out``.
    """
    from matplotlib import style as mpl_style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if style is not None and style not in mpl_style.available:
        if f'seaborn-v0_8-{style}' not in mpl_style.available:
            raise ValueError(
                f'unknown matplotlib style {style!r}; choose from {", ".join(sorted(mpl_style.available))}'
            )
        style = f'seaborn-v0_8-{style}'
    xs = np.arange(schedule.total_iters)
    with mpl_style.context(style or 'default'):
        fig = Figure(figsize=figsize)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for i, (label, ys) in enumerate(schedule.curves.items()):
            ax.plot(xs, ys, label=label, linewidth=1.6 if i == 0 else 0.9, zorder=3 if i == 0 else 2)
        ax.set_xlabel('iteration')
        ax.set_ylabel(schedule.param)
        ax.set_xlim(0, max(schedule.total_iters - 1, 1))
        if schedule.iters_per_epoch and schedule.max_epochs:
            n = schedule.iters_per_epoch
            top = ax.secondary_xaxis('top', functions=(lambda x: x / n, lambda e: e * n))
            top.set_xlabel('epoch')
        if style is None:
            ax.grid(alpha=0.3)
        if title:
            ax.set_title(title)
        if len(schedule.curves) > 1:
            ax.legend(fontsize='small', ncol=1 + len(schedule.curves) // 12)
        fig.tight_layout()
        fig.savefig(out)
    return out
