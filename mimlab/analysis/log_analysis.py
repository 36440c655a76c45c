"""Reading mmengine's JSON scalar logs: training curves and iteration times, behind
``tools/analysis_tools/analyze_logs.py``.

mmengine's ``LocalVisBackend`` writes ``<work_dir>/<timestamp>/vis_data/scalars.json`` (and a copy named
``<timestamp>.json``), one JSON object per line. A training line carries ``iter`` (the global iteration, 1-based),
``epoch`` (epoch-based loops only), ``step`` (= ``iter``), ``lr``, ``loss``..., and ``time`` / ``data_time``: each the
log processor's mean over its window (the last 10 iterations with ``configs/_base_/default_runtime.py``). A validation
line has no ``iter``: its metrics, ``time`` / ``data_time`` and ``step``, the epoch in epoch-based runs, the
iteration otherwise. (mmcv 1.x's ``*.log.json``, whose ``iter`` counts within the epoch, is a different format.)
"""

import glob
import json
import os.path as osp
import statistics
from itertools import groupby


class LogFormatError(ValueError):
    """A log file that cannot be read, or that lacks what was asked of it."""


def find_json_log(path: str) -> str:
    """The JSON log behind ``path``: the file itself, a run directory's ``vis_data/scalars.json``, or a work
    directory's newest run (timestamp directories sort by time).

    Raises:
        FileNotFoundError: No JSON log there.
    """
    if osp.isfile(path):
        return path
    for pattern in ('vis_data/scalars.json', '*/vis_data/scalars.json'):
        found = sorted(glob.glob(osp.join(path, pattern)))
        if found:
            return found[-1]
    raise FileNotFoundError(f'no JSON log at {path} (expected a .json file, or a work dir with vis_data/scalars.json)')


def load_json_log(path: str) -> dict:
    """Split a JSON scalar log into training and validation records.

    Args:
        path: The log, or a run / work directory (:func:`find_json_log`).

    Returns:
        ``dict(path=..., train=[...], val=[...])``: the records (dicts) in file order; blank lines are skipped.

    Raises:
        LogFormatError: A line that is not a JSON object, named by file and line number.
    """
    path = find_json_log(path)
    log = dict(path=path, train=[], val=[])
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise LogFormatError(f'{path}:{lineno}: not a JSON line ({e.msg}): {line.strip()[:80]!r}') from None
            if not isinstance(record, dict):
                raise LogFormatError(f'{path}:{lineno}: expected a JSON object, got {type(record).__name__}')
            log['train' if 'iter' in record else 'val'].append(record)
    return log


def log_keys(log: dict) -> dict[str, list[str]]:
    """The keys of the training and of the validation records (those in at least one record), sorted."""
    return {phase: sorted({k for r in log[phase] for k in r}) for phase in ('train', 'val')}


def _missing_key_error(log: dict, key: str) -> LogFormatError:
    keys = log_keys(log)
    listed = '; '.join(f'{phase}: {", ".join(ks) or "(no lines)"}' for phase, ks in keys.items())
    return LogFormatError(f'key {key!r} is not in {log["path"]}; it has {listed}')


def _number(log: dict, record: dict, key: str) -> float:
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LogFormatError(f'{key!r} in {log["path"]} is not a number: {value!r}')
    return float(value)


def _iters_per_epoch(train: list[dict]) -> float | None:
    """Iterations per epoch of an epoch-based log, None for an iteration-based one.

    The logger writes at the same positions within every epoch, so the last logged iterations of consecutive epochs
    lie one epoch apart (the largest gap, should the final epoch be cut short); with a single epoch, ``iter / epoch``
    of its last line, exact when the epoch's last iteration was logged.
    """
    train = [r for r in train if 'epoch' in r and 'iter' in r]
    if not train:
        return None
    last = {epoch: max(r['iter'] for r in rs) for epoch, rs in groupby(train, key=lambda r: r['epoch'])}
    epochs = sorted(last)
    gaps = [last[b] - last[a] for a, b in zip(epochs, epochs[1:]) if b == a + 1]
    return float(max(gaps)) if gaps else last[epochs[-1]] / epochs[-1]


def curve(log: dict, key: str, x_axis: str = 'iter') -> tuple[list[float], list[float], str]:
    """The values of ``key`` over training.

    A key of the training lines is read from them (``time`` and ``data_time`` are in both: training wins), else from
    the validation lines.

    Args:
        log: From :func:`load_json_log`.
        key: e.g. 'loss', 'lr', 'accuracy/top1'.
        x_axis: 'iter' (training iterations) or 'epoch' (fractional epochs: ``iter / iterations per epoch``).

    Returns:
        (xs, ys, phase) with phase 'train' or 'val'.

    Raises:
        LogFormatError: ``key`` in no line (the message lists the keys there are), a value that is not a number, or
            ``x_axis='epoch'`` on an iteration-based log.
    """
    if x_axis not in ('iter', 'epoch'):
        raise ValueError(f"x_axis must be 'iter' or 'epoch', got {x_axis!r}")
    per_epoch = _iters_per_epoch(log['train'])
    if x_axis == 'epoch' and per_epoch is None and log['train']:
        raise LogFormatError(f'{log["path"]} has no epochs (an iteration-based run): plot against iterations')
    phase = 'train' if any(key in r for r in log['train']) else 'val'
    records = [r for r in log[phase] if key in r]
    if not records:
        raise _missing_key_error(log, key)
    xs, ys = [], []
    for r in records:
        if phase == 'train':
            x = r['iter'] / per_epoch if x_axis == 'epoch' else r['iter']
        else:  # step: the epoch in an epoch-based run, the iteration otherwise
            if 'step' not in r:
                raise LogFormatError(f'{log["path"]}: a validation line with {key!r} has no "step": {r}')
            x = r['step'] * per_epoch if x_axis == 'iter' and per_epoch is not None else r['step']
        xs.append(x)
        ys.append(_number(log, r, key))
    return xs, ys, phase


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (fewer at the start); ``window=1`` returns the values."""
    if window < 1:
        raise ValueError(f'window must be >= 1, got {window}')
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def run_name(path: str) -> str:
    """A short name for a log: its run directory (the timestamp) for ``<run>/vis_data/*.json``, else the file stem."""
    parent = osp.dirname(osp.abspath(path))
    if osp.basename(parent) == 'vis_data':
        return osp.basename(osp.dirname(parent))
    return osp.splitext(osp.basename(path))[0]


def plot_curves(
    logs: list[dict],
    keys: list[str],
    out: str,
    legend: list[str] | None = None,
    title: str | None = None,
    style: str | None = None,
    x_axis: str = 'iter',
    window: int = 1,
    figsize: tuple[float, float] = (12, 7),
) -> str:
    """Plot ``keys`` of every log in one figure and save it (Agg: no display needed).

    Args:
        logs: From :func:`load_json_log`.
        keys: Keys to plot; one curve per (log, key), in that order.
        out: Image file to write (format from its extension).
        legend: One label per curve; default ``'<run name> <key>'``.
        title: Figure title.
        style: A matplotlib style name (``matplotlib.style.available``).
        x_axis: 'iter' or 'epoch' (see :func:`curve`).
        window: Smooth each curve with a trailing mean over this many logged values.
        figsize: (width, height) in inches.

    Returns:
        ``out``.
    """
    from matplotlib import style as mpl_style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(logs) * len(keys)
    if legend is None:
        legend = [f'{run_name(log["path"])} {key}' for log in logs for key in keys]
    elif len(legend) != n:
        raise ValueError(
            f'--legend needs one label per curve: {len(logs)} logs x {len(keys)} keys = {n}, got {len(legend)}'
        )
    if style is not None and style not in mpl_style.available:
        raise ValueError(f'unknown matplotlib style {style!r}; choose from {", ".join(sorted(mpl_style.available))}')
    curves = [curve(log, key, x_axis) for log in logs for key in keys]  # errors before anything is drawn
    with mpl_style.context(style or 'default'):
        fig = Figure(figsize=figsize)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for (xs, ys, phase), label in zip(curves, legend):
            marker = 'o' if phase == 'val' else None  # validation: a few points, one per evaluation
            ax.plot(xs, moving_average(ys, window), label=label, linewidth=0.9, marker=marker, markersize=3)
        ax.set_xlabel('epoch' if x_axis == 'epoch' else 'iteration')
        ax.set_ylabel(keys[0] if len(keys) == 1 else 'value')
        if style is None:
            ax.grid(alpha=0.3)
        if title:
            ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out)
    return out


def train_time_stats(log: dict, include_outliers: bool = False) -> dict:
    """Iteration-time statistics of the training lines' ``time`` values.

    The first logged value of each epoch (of the run, without epochs) is left out unless ``include_outliers``: it
    carries the dataloader's start (worker start-up, the first batches) and evaluation before it.

    Returns:
        ``num_logged``, ``num_used``, ``mean``, ``std`` (population), ``slowest`` and ``fastest`` (dicts with
        ``time`` and the ``iter`` it was logged at), and for epoch-based logs ``epoch_means`` ({epoch: mean}),
        ``slowest_epoch``, ``fastest_epoch`` and ``epoch_std``. Times in seconds per iteration.

    Raises:
        LogFormatError: No training line has a ``time`` (or none is left).
    """
    records = [r for r in log['train'] if 'time' in r]
    if not records:
        keys = ', '.join(log_keys(log)['train']) or '(no training lines)'
        raise LogFormatError(f'no training line of {log["path"]} has a "time" value; they have: {keys}')
    by_epoch = 'epoch' in records[0]
    groups = [list(g) for _, g in groupby(records, key=lambda r: r.get('epoch'))]
    kept = [g if include_outliers else g[1:] for g in groups]
    used = [r for g in kept for r in g]
    if not used:
        raise LogFormatError(
            f'{log["path"]}: only the first logged time of each epoch is there; use --include-outliers to count it'
        )
    times = [_number(log, r, 'time') for r in used]
    slow = max(used, key=lambda r: r['time'])
    fast = min(used, key=lambda r: r['time'])
    stats = dict(
        num_logged=len(records),
        num_used=len(used),
        mean=statistics.fmean(times),
        std=statistics.pstdev(times),
        slowest=dict(time=float(slow['time']), iter=slow.get('iter')),
        fastest=dict(time=float(fast['time']), iter=fast.get('iter')),
    )
    if by_epoch:
        means = {g[0]['epoch']: statistics.fmean(float(r['time']) for r in g) for g in kept if g}
        stats['epoch_means'] = means
        stats['slowest_epoch'] = max(means, key=means.get)
        stats['fastest_epoch'] = min(means, key=means.get)
        stats['epoch_std'] = statistics.pstdev(means.values())
    return stats


def format_train_time(path: str, stats: dict, include_outliers: bool = False) -> str:
    """The report of ``analyze_logs.py cal_train_time`` for one log."""
    left_out = stats['num_logged'] - stats['num_used']
    note = '' if include_outliers else f', {left_out} first-of-epoch values left out (--include-outliers keeps them)'
    lines = [
        f'----- {path}',
        f'logged iteration times  {stats["num_used"]} used of {stats["num_logged"]}{note}',
        f'average iter time       {stats["mean"]:.4f} s/iter',
        f'slowest                 {stats["slowest"]["time"]:.4f} s/iter (logged at iter {stats["slowest"]["iter"]})',
        f'fastest                 {stats["fastest"]["time"]:.4f} s/iter (logged at iter {stats["fastest"]["iter"]})',
        f'std                     {stats["std"]:.4f} s/iter',
    ]
    if 'epoch_means' in stats:
        means = stats['epoch_means']
        lines += [
            f'slowest epoch           {stats["slowest_epoch"]}, average {means[stats["slowest_epoch"]]:.4f} s/iter',
            f'fastest epoch           {stats["fastest_epoch"]}, average {means[stats["fastest_epoch"]]:.4f} s/iter',
            f'std over epochs         {stats["epoch_std"]:.4f} s/iter',
        ]
    return '\n'.join(lines)
