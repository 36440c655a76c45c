"""Checkpoints that are never half-written or half-pruned, every N minutes as well as every N epochs/iterations.

An ImageNet epoch of a large MAE takes hours: a job preempted late in an epoch loses all of it when checkpoints are
per epoch. mimlab's :class:`AtomicCheckpointHook` adds a wall-clock interval to mmengine's ``CheckpointHook``, and
replaces the ``last_checkpoint`` pointer and prunes old checkpoints only once the new one is complete. mimlab's
configs name it (``default_hooks.checkpoint=dict(type='AtomicCheckpointHook', ...)``); it takes mmengine's
arguments plus those listed in the class docstring. A config that still says ``type='CheckpointHook'`` gets
mmengine's hook: it trains, but :class:`~mimlab.engine.hooks.PreemptionHook` refuses to start without this one.

A job killed while a checkpoint was being written leaves the writer's temporary file behind (as large as a
checkpoint); the hook removes such leftovers from its folders when a run starts or resumes, and logs what it removed.
"""

import os
import os.path as osp
import time
from collections.abc import Callable

import torch
from mmengine.dist import broadcast, get_world_size, is_main_process
from mmengine.hooks import CheckpointHook as _MMEngineCheckpointHook

from mimlab.engine.hooks.train_state import TrainStateHook
from mimlab.registry import HOOKS
from mimlab.utils.atomic_io import atomic_write, interrupted_writes

__all__ = ['AtomicCheckpointHook', 'check_mid_epoch_resume']


def check_mid_epoch_resume(runner, needed_by: str) -> None:
    """Raise unless a checkpoint saved mid-epoch resumes mid-epoch: the train loop is not mmengine's epoch loop.

    mmengine's ``EpochBasedTrainLoop`` restarts the epoch of an iteration checkpoint from its first batch, so the
    batches before the checkpoint would be trained twice; :class:`~mimlab.engine.loops.ExactResumeEpochBasedTrainLoop`
    continues with the next batch. Iteration-based loops resume mid-run either way.

    Args:
        runner: The runner, its train loop built.
        needed_by: The config key that saves mid-epoch, for the message.
    """
    from mmengine.runner import EpochBasedTrainLoop

    from mimlab.engine.loops import ExactResumeEpochBasedTrainLoop

    loop = runner.train_loop
    if isinstance(loop, EpochBasedTrainLoop) and not isinstance(loop, ExactResumeEpochBasedTrainLoop):
        raise ValueError(
            f'{needed_by} saves checkpoints in the middle of an epoch, but train_cfg builds '
            f'{type(loop).__module__}.{type(loop).__name__}, which resumes such a checkpoint from the first batch of '
            "its epoch (training those batches twice): set train_cfg.type='ExactResumeEpochBasedTrainLoop' "
            "(mimlab's; train_cfg.type='EpochBasedTrainLoop' is mmengine's)"
        )


@HOOKS.register_module()
class AtomicCheckpointHook(_MMEngineCheckpointHook):
    """mmengine's ``CheckpointHook`` plus a time interval; the same arguments, and:

    Args:
        interval_minutes: Also save when this many minutes have passed since the last save (of any kind). The
            checkpoint is named ``iter_{n}.pth`` after the iteration it ends, also in epoch-based runs, and resumes
            mid-epoch (with :class:`mimlab.engine.loops.ExactResumeEpochBasedTrainLoop`, which an epoch-based run
            then needs). None: no time interval.
        check_every: Look at the clock only every this many iterations. Rank 0 reads its clock and broadcasts the
            decision, so all ranks save together (a save is a collective for sharded models, and ranks' clocks
            and speeds differ); the broadcast is one tiny collective per ``check_every`` iterations.
        time_fn: The clock in seconds (injectable for tests).

    Differences from mmengine's hook, on purpose:

    - ``max_keep_ckpts`` prunes by file (mmengine re-derives names from the step with one template, which
      cannot name both ``epoch_*`` and time-based ``iter_*`` files), and only *after* the new checkpoint is
      complete, so a kill during a save never leaves fewer than ``max_keep_ckpts`` checkpoints.
    - ``work_dir/last_checkpoint`` is replaced atomically after the checkpoint is complete (mmengine truncates
      and rewrites it in place), so it always names a complete file.
    - Before each save, all ranks' RNG states are gathered (:meth:`TrainStateHook.collect`) for an exact resume;
      mmengine writes checkpoints from rank 0 alone.
    - When training starts (new run or resume), rank 0 removes what interrupted checkpoint writes left in the
      checkpoint folder and the work dir: only files named like :func:`mimlab.utils.atomic_io.atomic_write`'s
      temporary files (``.{name}.{8 characters}.tmp``) for a ``*.pth`` file or ``last_checkpoint``, so never a
      complete checkpoint; the log names each file and its size.
    """

    def __init__(
        self,
        *args,
        interval_minutes: float | None = None,
        check_every: int = 10,
        time_fn: Callable[[], float] = time.monotonic,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if interval_minutes is not None and interval_minutes <= 0:
            raise ValueError(f'AtomicCheckpointHook: interval_minutes must be > 0, got {interval_minutes}')
        if check_every < 1:
            raise ValueError(f'AtomicCheckpointHook: check_every must be >= 1, got {check_every}')
        self.interval_minutes = interval_minutes
        self.check_every = check_every
        self.time_fn = time_fn
        self.kept: list[str] = []
        self._last_save_time = None
        self._saved_at_iter = None

    def before_train(self, runner) -> None:
        keep, self.max_keep_ckpts = self.max_keep_ckpts, -1  # pruning is ours (by file), not mmengine's by step
        super().before_train(runner)
        self.max_keep_ckpts = keep
        if is_main_process():
            self.remove_interrupted_writes(runner)
        self.kept = list(runner.message_hub.get_info('kept_checkpoints', []))
        self._last_save_time = self.time_fn()
        if self.interval_minutes is not None:
            check_mid_epoch_resume(runner, 'default_hooks.checkpoint.interval_minutes')
        elif not self.by_epoch:
            check_mid_epoch_resume(runner, 'default_hooks.checkpoint (by_epoch=False)')

    def remove_interrupted_writes(self, runner) -> list[str]:
        """Delete the temporary files that killed checkpoint writes left in ``out_dir`` and the work dir (see the
        class docstring); local folders only. Returns the removed paths."""
        folders = {osp.abspath(runner.work_dir), osp.abspath(self.out_dir)}
        removed = []
        for folder in sorted(folders):
            for path, target in interrupted_writes(folder):
                if not (target.endswith('.pth') or target == 'last_checkpoint'):
                    continue
                size = os.path.getsize(path)
                os.remove(path)
                removed.append(f'{path} ({size / 2**20:.1f} MiB, an unfinished write of {target})')
        if removed:
            runner.logger.warning(
                f'removed {len(removed)} file(s) left by interrupted checkpoint writes: ' + '; '.join(removed)
            )
        return removed

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        if self.interval_minutes is None or (runner.iter + 1) % self.check_every:
            return
        due = torch.tensor(int(self.time_fn() - self._last_save_time >= self.interval_minutes * 60))
        if get_world_size() > 1:
            broadcast(due, src=0)
        if not due.item() or self._saved_at_iter == runner.iter:
            return
        last_batch = self.by_epoch and batch_idx + 1 == len(runner.train_dataloader)
        if last_batch and (
            self.every_n_epochs(runner, self.interval, self.save_begin)
            or (self.save_last and self.is_last_train_epoch(runner))
        ):
            return  # the epoch checkpoint is written right after this
        self.save_iteration_checkpoint(runner, f'{self.interval_minutes} min passed')

    def save_iteration_checkpoint(self, runner, reason: str) -> None:
        """Save ``iter_{runner.iter + 1}.pth`` now (mid-epoch too), called on every rank after a training iteration;
        resuming from it continues with the next batch."""
        runner.logger.info(f'Saving checkpoint at {runner.iter + 1} iterations ({reason})')
        tmpl, self.filename_tmpl = self.filename_tmpl, 'iter_{}.pth'
        by_epoch, self.by_epoch = self.by_epoch, False  # meta: epoch = epochs completed, iter = iter + 1
        try:
            self._save_checkpoint_with_step(runner, runner.iter + 1, dict(epoch=runner.epoch, iter=runner.iter + 1))
        finally:
            self.filename_tmpl, self.by_epoch = tmpl, by_epoch

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        name = self.filename_tmpl.format(step)
        path = self.file_backend.join_path(self.out_dir, name)
        pruned = []
        if self.max_keep_ckpts > 0:
            if path not in self.kept:
                self.kept.append(path)
            pruned, self.kept = self.kept[: -self.max_keep_ckpts], self.kept[-self.max_keep_ckpts :]
            runner.message_hub.update_info('kept_checkpoints', list(self.kept))  # saved with it, for resume
        self.last_ckpt = path
        runner.message_hub.update_info('last_ckpt', path)
        for hook in runner.hooks:
            if isinstance(hook, TrainStateHook):
                hook.collect()  # on all ranks: the save itself happens on rank 0 only
            elif hasattr(hook, 'save_shards'):  # ShardedCheckpointHook: every rank writes its shards first
                hook.save_shards(runner, path)
        runner.save_checkpoint(
            self.out_dir,
            name,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args,
        )
        self._last_save_time = self.time_fn()
        self._saved_at_iter = runner.iter
        if not is_main_process():
            return
        atomic_write(path.encode(), osp.join(runner.work_dir, 'last_checkpoint'))
        for old in pruned:
            if self.file_backend.isfile(old):
                self.file_backend.remove(old)
            elif self.file_backend.isdir(old):  # checkpoints saved by DeepSpeed are folders
                self.file_backend.rmtree(old)
            if self.file_backend.isdir(old + '.dcp'):  # the shards of a sharded (FSDP) checkpoint
                self.file_backend.rmtree(old + '.dcp')
