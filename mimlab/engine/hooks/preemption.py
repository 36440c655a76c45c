"""Save a checkpoint and stop cleanly when the job is told to stop (SIGTERM: Slurm preemption, ``scancel``, k8s;
SIGINT: Ctrl-C in the terminal).

Slurm sends SIGTERM to every task of a job it preempts or cancels (``scancel --signal=TERM``, or ``#SBATCH
--signal=TERM@120`` some time before the time limit), then SIGKILL after ``KillWait`` seconds. The handler only
sets a flag; after the current iteration every rank agrees on it (a 1-element all-reduce every ``check_every``
iterations, so all ranks stop at the same iteration), the iteration checkpoint is written through mimlab's
:class:`~mimlab.engine.hooks.AtomicCheckpointHook` (atomic, with every rank's RNG state) and the process exits with
status 0. ``--resume`` then continues with the next batch. When training starts, a run whose checkpoint hook is
mmengine's ``CheckpointHook``, or whose loop is mmengine's ``EpochBasedTrainLoop`` (which would train the saved
epoch's first batches again), is refused with the config key to change, rather than failing at the signal.

Ctrl-C does the same, and a second Ctrl-C aborts at once (``KeyboardInterrupt``, no checkpoint). torchrun passes
the terminal's SIGINT on to its workers, which then see it twice within milliseconds: a SIGINT less than
:data:`SAME_PRESS_S` after the first counts as the same press.
"""

import functools
import os
import signal
import threading
import time

import torch
from mmengine.dist import all_reduce, barrier, get_world_size
from mmengine.hooks import CheckpointHook as MMEngineCheckpointHook
from mmengine.hooks import Hook

from mimlab.engine.hooks.checkpoint import AtomicCheckpointHook, check_mid_epoch_resume
from mimlab.registry import HOOKS

__all__ = ['PreemptionHook']

SAME_PRESS_S = 1.0  # a second SIGINT within this many seconds is the same Ctrl-C, delivered again by torchrun


def _filter_sigterm() -> None:
    """Exit on SIGTERM from the parent process only; ignore it from anyone else.

    The parent (the DataLoader, or multiprocessing at interpreter exit) stops its workers with SIGTERM, so that
    must keep working. torch's own worker handler exits on the parent's SIGTERM and dies of anyone else's; we
    keep the first half and drop the second. Python handlers do not see the sender, so SIGTERM is blocked in
    this (single-threaded, just-forked) worker and a daemon thread takes it with ``sigwaitinfo``, which does.
    """

    def wait() -> None:
        while True:
            info = signal.sigwaitinfo({signal.SIGTERM})
            if info.si_pid == os.getppid():
                os._exit(0)  # what torch's worker handler does for its parent's SIGTERM

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # threads started from here on inherit it
    threading.Thread(target=wait, name='sigterm-from-parent-only', daemon=True).start()


def _worker_init(signals, init_fn, worker_id):
    """DataLoader worker start: the loader's own init (seeding), then survive the job's stop signals.

    Slurm signals every process of a step, workers included, and a worker that dies of SIGTERM makes the main
    process fail with "DataLoader worker is killed" before it can save. The workers keep serving batches until
    the main process has saved and shuts them down.
    """
    if init_fn is not None:
        init_fn(worker_id)
    for sig in signals:
        if sig == signal.SIGTERM:
            _filter_sigterm()
        else:
            signal.signal(sig, signal.SIG_IGN)


@HOOKS.register_module()
class PreemptionHook(Hook):
    """Turn SIGTERM, Ctrl-C (SIGINT) and the other ``signals`` into "checkpoint at the next iteration boundary, then
    exit 0"; a second Ctrl-C aborts at once.

    Args:
        signals: Signal names to handle.
        check_every: Iterations between the ranks' agreement checks (each is one scalar all-reduce and a host
            read). 1 reacts fastest; a larger value suits GPU runs where a per-step sync costs throughput. Single
            process runs read the flag every iteration for free.
        exit_code: Status of the process after the checkpoint (0: a clean exit that Slurm does not count as a
            failure; use e.g. 143 to have a wrapper script requeue the job).
    """

    priority = 'LOWEST'  # after the other hooks' after_train_iter (logging, the regular checkpoint)

    def __init__(self, signals=('SIGTERM', 'SIGINT'), check_every: int = 1, exit_code: int = 0):
        self.signals = [getattr(signal, name) for name in signals]
        self.check_every = max(1, int(check_every))
        self.exit_code = exit_code
        self.requested = False
        self._signal_name = None
        self._first_sigint = None
        self._previous = {}

    def _handler(self, signum, frame) -> None:
        if signum == signal.SIGINT:
            now = time.monotonic()
            if self._first_sigint is not None and now - self._first_sigint > SAME_PRESS_S:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt('second Ctrl-C: aborted without a checkpoint')
            if self._first_sigint is None:
                self._first_sigint = now
                os.write(
                    2,
                    b'\nCtrl-C: saving a checkpoint after this iteration, then stopping (--resume continues); '
                    b'press Ctrl-C again to abort at once without one\n',
                )
        self._signal_name = self._signal_name or signal.Signals(signum).name
        self.requested = True

    def before_train(self, runner) -> None:
        # mimlab's configs name AtomicCheckpointHook; one that still says type='CheckpointHook' gets mmengine's, which
        # cannot save mid-epoch: refuse now rather than at the signal (without any checkpoint hook the run is told so
        # at the signal, as before)
        saver = next((h for h in runner.hooks if isinstance(h, MMEngineCheckpointHook)), None)
        if saver is not None and not isinstance(saver, AtomicCheckpointHook):
            raise ValueError(
                "default_hooks.preemption (PreemptionHook) saves through mimlab's AtomicCheckpointHook, but "
                f'default_hooks.checkpoint builds {type(saver).__module__}.{type(saver).__name__}: set '
                "default_hooks.checkpoint.type='AtomicCheckpointHook' (type='CheckpointHook' is mmengine's), or "
                'turn preemption off with default_hooks.preemption=None'
            )
        if saver is not None:
            check_mid_epoch_resume(runner, 'default_hooks.preemption (PreemptionHook)')
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handler)
        loader = runner.train_loop.dataloader  # built, its workers not started yet
        wrapped = getattr(loader.worker_init_fn, 'func', None) is _worker_init
        if getattr(loader, 'num_workers', 0) > 0 and not wrapped:
            loader.worker_init_fn = functools.partial(_worker_init, tuple(self.signals), loader.worker_init_fn)

    def after_train(self, runner) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def _agreed(self, runner) -> bool:
        if get_world_size() == 1:
            return self.requested
        if (runner.iter + 1) % self.check_every:
            return False
        flag = torch.tensor([float(self.requested)])
        all_reduce(flag, op='max')  # any rank told to stop stops them all, at this same iteration
        return bool(flag.item())

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._agreed(runner):
            return
        hooks = [h for h in runner.hooks if isinstance(h, AtomicCheckpointHook)]
        if not hooks:
            raise RuntimeError(
                f'iteration {runner.iter + 1}: stop requested ({self._signal_name or "a signal"}) but the run has no '
                'checkpoint hook '
                "(default_hooks.checkpoint=dict(type='AtomicCheckpointHook', ...)) to save with; the progress since "
                'the last checkpoint is lost'
            )
        hooks[0].save_iteration_checkpoint(runner, 'stop requested by a signal')
        # rank 0 writes the file alone; a rank that exited now, with a non-zero exit_code, would have srun
        # (--kill-on-bad-exit) or torchrun stop rank 0 in the middle of the write
        barrier()
        runner.logger.warning(
            f'iteration {runner.iter + 1}: stopped on request ({self._signal_name or "on another rank"}) after saving '
            'a checkpoint; continue with '
            '--resume'
        )
        raise SystemExit(self.exit_code)
