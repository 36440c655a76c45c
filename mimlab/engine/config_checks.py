"""Checks and adjustments ``tools/train.py`` applies before a run starts, so that mistakes get answers in the recipe's
own terms instead of a traceback from deep inside mmengine (or, worse, no answer at all).

- :func:`check_cfg_options`: a top-level ``--cfg-options`` key the run would ignore is refused, with the nearest names.
- :func:`check_schedule`: a scheduler that would begin where the run ends (warmup not shorter than the run).
- :func:`convert_sync_bn`: ``SyncBN`` in a model config becomes ``BN`` on processes without a GPU.
- :func:`check_run_files` (:func:`keep_earlier_run`, :func:`check_resume`): a run never replaces an earlier run's
  checkpoints, ``--resume`` with nothing to resume says so, and a file that is not a checkpoint is named as such.
- :func:`add_vis_backend` / :func:`normalize_vis_backends`: ``--vis-backend tensorboard|wandb|mlflow`` and its
  ``--cfg-options visualizer.vis_backends=[...]`` form.

Messages meant for the user go through :func:`note`, printed by the launch's rank 0 only.
"""

import contextlib
import difflib
import glob
import inspect
import os
import os.path as osp
import sys
import traceback

import torch
from mmengine.config import Config
from mmengine.runner import FlexibleRunner, Runner

from mimlab.utils.checkpoint import NotACheckpointError, check_checkpoint_file
from mimlab.utils.dist import launch_rank

__all__ = [
    'note',
    'fail_once',
    'check_cfg_options',
    'check_schedule',
    'convert_sync_bn',
    'keep_earlier_run',
    'check_resume',
    'check_run_files',
    'add_vis_backend',
    'normalize_vis_backends',
    'VIS_BACKENDS',
]

# top-level keys the runners read besides their constructor arguments (mmengine 0.10.7 Runner.wrap_model / train,
# and mimlab.engine.launch.setup_distributed)
_RUNNER_EXTRAS = {'model_wrapper_cfg', 'find_unused_parameters', 'sync_bn', 'compile', 'runner_type', 'strategy'}
_SYNC_BN = {'SyncBN', 'MMSyncBN', 'SyncBatchNorm', 'nn.SyncBatchNorm', 'TorchSyncBN'}


def note(message: str) -> None:
    """Print ``message`` to stderr once per launch (rank 0 of torchrun / Slurm, or the only process)."""
    if launch_rank() == 0:
        print(message, file=sys.stderr, flush=True)


def _runner_keys() -> set[str]:
    keys = set()
    for cls in (Runner, FlexibleRunner):
        keys |= {n for n in inspect.signature(cls.__init__).parameters if n not in ('self', 'cfg')}
    return keys | _RUNNER_EXTRAS


def _paths_named(cfg, name: str, prefix: str = '') -> list[str]:
    """Dotted paths inside ``cfg`` whose last key is ``name`` (where a recipe variable was substituted)."""
    found = []
    items = cfg.items() if isinstance(cfg, dict) else enumerate(cfg) if isinstance(cfg, list | tuple) else []
    for key, value in items:
        path = f'{prefix}{key}'
        if key == name and prefix:
            found.append(path)
        if isinstance(value, dict | list | tuple):
            found += _paths_named(value, name, f'{path}.')
    return found


def check_cfg_options(cfg: Config, options: dict | None) -> None:
    """Refuse ``--cfg-options`` whose top-level key no runner reads.

    A typo (``max_epoch=1``) would otherwise be stored and ignored. A recipe variable (``max_epochs = 300`` at the
    top of a config file) that the config also holds under the same name further down (``train_cfg.max_epochs``) is
    refused too: mmengine substituted it when the file was loaded, so changing it afterwards changes nothing; the
    message names the keys to set instead. Other keys the config defines are accepted (code may read them).

    Raises:
        ValueError: naming the key and the nearest valid names.
    """
    runner_keys = _runner_keys()
    plain = {k for k in cfg.keys() if k not in runner_keys and not isinstance(cfg[k], dict | list | tuple)}

    def used_at(name):  # where mmengine substituted the recipe variable ``name``
        return [p for p in _paths_named(cfg.to_dict(), name) if p.split('.')[0] in runner_keys]

    for option, value in (options or {}).items():
        top = option.split('.')[0]
        given = f'--cfg-options {option}={value}'
        if top in runner_keys:
            continue
        where = used_at(top) if top in plain else []
        if where:
            raise ValueError(
                f'{given}: {top} is a variable of the recipe, substituted where it is used when the file was loaded, '
                f'so changing it now would change nothing; set where it is used instead: '
                + ', '.join(f'{p}={value}' for p in where)
            )
        if top in cfg:  # a key the config defines for code that reads it (train_pipeline, a switch): may be meant
            continue
        near = difflib.get_close_matches(top, sorted(runner_keys | set(cfg.keys())), n=3, cutoff=0.6)
        near = [q for n in near for q in (used_at(n) if n in plain else [n])]
        hint = f'; did you mean {" or ".join(near)}?' if near else ''
        raise ValueError(f'{given}: no run reads a top-level key {top!r}{hint}')


def _schedulers(cfg: Config) -> list:
    schedulers = cfg.get('param_scheduler') or []
    return [schedulers] if isinstance(schedulers, dict) else list(schedulers)


def check_schedule(cfg: Config) -> None:
    """Refuse a parameter scheduler that begins where the run ends (mmengine: "end should be larger than begin").

    The usual cause is a short run (``train_cfg.max_epochs=1``) of a recipe whose warmup lasts that long: the
    message says so with the recipe's numbers (and its ``warmup_epochs`` / ``warmup_iters`` variable, if any).

    Raises:
        ValueError: naming the scheduler, its begin, the run's length and what to change.
    """
    loop = cfg.get('train_cfg') or {}
    by_epoch_run = 'max_epochs' in loop
    for i, sched in enumerate(_schedulers(cfg)):
        by_epoch = sched.get('by_epoch', True)
        length = loop.get('max_epochs') if by_epoch else loop.get('max_iters')
        if length is None or (by_epoch != by_epoch_run and 'end' not in sched):
            continue
        unit, key = ('epoch', 'train_cfg.max_epochs') if by_epoch else ('iteration', 'train_cfg.max_iters')
        begin, end = sched.get('begin', 0), min(sched.get('end', length), length)
        if begin < end:
            continue
        warmup = next(
            (
                (j, s)
                for j, s in enumerate(_schedulers(cfg)[:i])
                if s.get('by_epoch', True) == by_epoch and s.get('end') == begin
            ),
            None,
        )
        var = next((v for v in ('warmup_epochs', 'warmup_iters', 'warmup') if cfg.get(v) == begin), None)
        what = f'param_scheduler[{i}] ({sched.get("type")}) begins at {unit} {begin}'
        if warmup is not None:
            what += f', where the warmup param_scheduler[{warmup[0]}] ({warmup[1].get("type")}) ends'
            what += f' ({var} = {begin} in the recipe)' if var else ''
        raise ValueError(
            f'{what}, but the run is {key}={length} {unit}s long: the warmup is not shorter than the run. Train for '
            f'more than {begin} {unit}s (--cfg-options {key}={begin + 1} or more), or shorten the warmup '
            f'(--cfg-options param_scheduler.{warmup[0] if warmup else 0}.end=N param_scheduler.{i}.begin=N)'
        )


def _replace_sync_bn(node, path: str, found: list) -> None:
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        if isinstance(value, dict | list):
            _replace_sync_bn(value, f'{path}.{key}', found)
    if isinstance(node, dict) and node.get('type') in _SYNC_BN:
        found.append(f'{path}.type={node["type"]}')
        node['type'] = 'BN'


def convert_sync_bn(cfg: Config) -> None:
    """On a process without a GPU, turn every ``SyncBN`` norm of ``cfg.model`` into ``BN`` (and drop ``sync_bn``).

    torch's ``SyncBatchNorm`` needs CUDA tensors, and DDP refuses a CPU module that has it ("SyncBatchNorm layers
    only work with GPU modules"). Plain BN normalises each process's batch alone: the statistics of a smaller
    batch, which is what a CPU launch can offer. The keys and the checkpoints are the same.
    """
    if torch.cuda.is_available():
        return
    found = []
    model = cfg.get('model')
    if model is not None:
        _replace_sync_bn(model, 'model', found)
        cfg.model = model
    if cfg.get('sync_bn'):
        found.append(f'sync_bn={cfg.sync_bn}')
        cfg.sync_bn = None
    if found:
        note(
            f'warning: this process has no GPU and SyncBatchNorm needs one: {", ".join(found)} replaced by plain BN '
            "(each process normalises its own batch; the checkpoint's keys are unchanged)"
        )


def _has_checkpoints(work_dir: str) -> bool:
    return osp.isfile(osp.join(work_dir, 'last_checkpoint')) or bool(glob.glob(osp.join(work_dir, '*.pth')))


def keep_earlier_run(cfg: Config) -> None:
    """A run that does not resume, in a work dir that holds an earlier run's checkpoints, writes beside them.

    mmengine would write ``epoch_N.pth`` over the earlier files (and prune them with ``max_keep_ckpts``). Instead
    the work dir becomes the first free ``<work_dir>-2``, ``-3``, ... and one line says so and how to resume the
    earlier run. Every rank picks the same folder: the choice depends on checkpoint files that no rank has written
    yet at this point.
    """
    if cfg.get('resume'):
        return
    work_dir = cfg.work_dir.rstrip('/')
    if not _has_checkpoints(work_dir):
        return
    n = 2
    while _has_checkpoints(f'{work_dir}-{n}'):
        n += 1
    cfg.work_dir = f'{work_dir}-{n}'
    note(
        f'{work_dir} holds checkpoints of an earlier run: this run writes to {cfg.work_dir} instead, the earlier '
        f'files stay (to continue the earlier run, pass --resume with --work-dir {work_dir})'
    )


def check_resume(cfg: Config) -> str | None:
    """For ``resume=True`` without a file: the checkpoint mmengine will resume from, or say there is none.

    Returns:
        The checkpoint path, or None after turning ``resume`` off with a one-line message (the run starts afresh).
    """
    if not cfg.get('resume') or cfg.get('load_from'):
        return cfg.get('load_from') if cfg.get('resume') else None
    from mmengine.runner.checkpoint import find_latest_checkpoint

    latest = find_latest_checkpoint(cfg.work_dir) if osp.isdir(cfg.work_dir) else None
    if latest is None:
        note(f'--resume: nothing to resume in {cfg.work_dir} (no checkpoint there): training from scratch')
        cfg.resume = False
        return None
    note(f'--resume: resuming from {latest}')
    return latest


def check_run_files(cfg: Config) -> None:
    """What ``tools/train.py`` checks on disk once the config is final (:func:`~mimlab.engine.launch.merge_train_args`
    itself reads no files): an earlier run's checkpoints in the work dir (:func:`keep_earlier_run`), what
    ``--resume`` resumes from (:func:`check_resume`), and that the checkpoint to resume or load is one.

    Raises:
        FileNotFoundError, NotACheckpointError: from :func:`~mimlab.utils.check_checkpoint_file`.
    """
    keep_earlier_run(cfg)
    resume_from = check_resume(cfg)
    if resume_from is not None:
        check_checkpoint_file(resume_from)
    elif cfg.get('load_from'):
        check_checkpoint_file(cfg.load_from)


# --vis-backend NAME -> mmengine's backend (the package it needs)
VIS_BACKENDS = {
    'tensorboard': ('TensorboardVisBackend', 'tensorboard'),
    'wandb': ('WandbVisBackend', 'wandb'),
    'mlflow': ('StepImagesMLflowVisBackend', 'mlflow'),  # mmengine's, images fixed (mimlab.visualization)
}


def normalize_vis_backends(cfg: Config) -> None:
    """Let ``--cfg-options visualizer.vis_backends=[LocalVisBackend,tensorboard]`` work: the command line can only
    give names, which mmengine's ``Visualizer`` refuses (``TypeError``); each name becomes ``dict(type=...)``, and
    the short names of ``--vis-backend`` go through :func:`add_vis_backend` (with its package check)."""
    vis = cfg.get('visualizer')
    backends = (vis or {}).get('vis_backends')
    if not isinstance(backends, list | tuple) or all(isinstance(b, dict) for b in backends):
        return
    short = [b for b in backends if isinstance(b, str) and b in VIS_BACKENDS]
    vis['vis_backends'] = [dict(type=b) if isinstance(b, str) else b for b in backends if b not in short]
    cfg.visualizer = vis
    add_vis_backend(cfg, short)


def add_vis_backend(cfg: Config, names: list[str]) -> None:
    """Add mmengine's TensorBoard / W&B / MLflow backend to the visualizer, beside the local files.

    Each writes under the run's ``<timestamp>/vis_data/``: TensorBoard event files; W&B's run folder (``wandb/``;
    online or, with ``WANDB_MODE=offline``, for a later ``wandb sync``); MLflow a local file store, or the server that
    ``MLFLOW_TRACKING_URI`` names.

    Raises:
        ImportError: naming the package and the install command when it is missing.
    """
    import importlib.util

    vis = cfg.get('visualizer') or dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    backends = list(vis.get('vis_backends') or [])
    for name in names:
        backend, package = VIS_BACKENDS[name]
        if importlib.util.find_spec(package) is None:
            raise ImportError(
                f'--vis-backend {name} needs the {package} package, which is not installed: pip install {package} '
                "(or pip install -e '.[trackers]' for all three)"
            )
        if any(b.get('type') == backend for b in backends):
            continue
        entry = dict(type=backend)
        if name == 'mlflow':
            if os.environ.get('MLFLOW_TRACKING_URI'):  # mmengine would ignore it and write a local store
                entry['tracking_uri'] = os.environ['MLFLOW_TRACKING_URI']
            else:  # mmengine's default, a file store in the run's vis_data/, which mlflow >= 3.7 refuses unless told
                os.environ.setdefault('MLFLOW_ALLOW_FILE_STORE', 'true')
        backends.append(entry)
    vis['vis_backends'] = backends
    cfg.visualizer = vis


@contextlib.contextmanager
def fail_once(exit_code: int = 2):
    """Around the steps every rank does alike before training (config, flags, checks): on an error, rank 0 prints
    it and every rank exits with ``exit_code``, instead of one traceback per process.

    Errors of mimlab's checks (``ValueError``, ``FileNotFoundError``, ``ImportError``, ``NotACheckpointError``) are
    printed as one line, anything else with its traceback. A single process prints like any rank 0.
    """
    try:
        yield
    except (ValueError, FileNotFoundError, ImportError, NotACheckpointError) as e:
        note(f'error: {e}')
        raise SystemExit(exit_code) from None
    except Exception:  # noqa: BLE001 - printed once, then the same exit
        if launch_rank() == 0:
            traceback.print_exc()
        raise SystemExit(exit_code) from None
