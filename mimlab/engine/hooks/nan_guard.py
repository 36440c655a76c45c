"""Skip updates whose loss or gradient is not finite; after several in a row, roll back or stop.

MAE-style pretraining can turn NaN hundreds of epochs in (mmpretrain #1632 and #1811, ConvMAE #6), and once a NaN
reaches the weights every later step is NaN: the run is lost from that iteration on, usually unnoticed until the
log is read. The guard looks at every update *before* ``optimizer.step()``:

- a non-finite loss or total gradient norm skips that update (gradients dropped, optimizer state untouched), and
  the skip is logged as a warning naming the iteration and counted (``nonfinite_skips`` in the scalars);
- ``max_consecutive`` such iterations in a row either raise an error naming the iterations
  (``on_repeated='raise'``) or reload the model and optimizer from ``work_dir/last_checkpoint`` and go on
  (``on_repeated='rollback'``, at most ``max_rollbacks`` times); with fp16 loss scaling the scale is halved too;
- the total gradient norm is logged as ``grad_norm`` (mmengine logs it itself when ``clip_grad`` is set).

Why a hook that takes over the optim wrapper's ``update_params`` rather than an ``OptimWrapper`` subclass: the check
has to sit between ``backward`` and ``step``, for every wrapper type a config may resolve to (``OptimWrapper``,
``AmpOptimWrapper``, after :func:`mimlab.engine.resolve_amp`), and a rollback needs the runner (work dir, logger).

Cost: one fused norm over the gradients (``torch._foreach_norm``), plus one scalar all-reduce when distributed so
that all ranks skip together. With a fused optimizer (the default: mimlab's constructor picks fused AdamW) and no fp16
loss scaling, the verdict never leaves the device: it is handed to the fused kernel as ``found_inf`` (the mechanism
``GradScaler`` uses), which leaves parameters and optimizer state untouched on a bad step, and the verdicts, losses
and norms are read in one go when the ``LoggerHook`` logs (:mod:`mimlab.engine.hooks.deferred`), so the step has no
host sync. Warnings, the skip count, ``grad_norm`` and a raise or rollback then come at that point, up to one logging
interval after the iterations they name (the bad updates themselves are skipped at once).
``clip_grad=dict(max_norm=...)`` is applied on the device in that mode (what ``clip_grad_norm_`` computes, from the
same norm). Other optimizers and fp16 with loss scaling read the verdict every step (one host sync;
``GradScaler.step`` pays it anyway). Measured numbers are in ``docs/running_at_scale.md``.
"""

import os.path as osp

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch.distributed.tensor import DTensor

from mimlab.engine.hooks.train_state import strip_wrapper_prefixes
from mimlab.registry import HOOKS
from mimlab.utils.checkpoint import load_checkpoint_weights_only

from .deferred import log_due, logging_interval

__all__ = ['NonFiniteGuardHook', 'total_grad_norm']


def total_grad_norm(optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """The L2 norm of all gradients of ``optimizer``'s parameters, as a 0-d fp32 tensor on their device (no sync)."""
    grads = [p.grad for group in optimizer.param_groups for p in group['params'] if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if isinstance(grads[0], DTensor):  # sharded (FSDP2): the norm over all ranks' shards
        return torch.nn.utils.get_total_norm(grads).full_tensor().float()
    return torch.linalg.vector_norm(torch.stack([n.float() for n in torch._foreach_norm(grads)]))


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Guard every optimizer update against non-finite losses and gradients.

    Args:
        max_consecutive: Non-finite iterations in a row that trigger ``on_repeated``.
        on_repeated: ``'raise'`` (stop with an error naming the iterations) or ``'rollback'`` (reload model and
            optimizer from ``work_dir/last_checkpoint``; the iteration count, lr schedule and data go on).
        max_rollbacks: Rollbacks allowed in one run before raising anyway.
    """

    priority = 'VERY_HIGH'

    def __init__(self, max_consecutive: int = 5, on_repeated: str = 'raise', max_rollbacks: int = 3):
        if on_repeated not in ('raise', 'rollback'):
            raise ValueError(f"NonFiniteGuardHook: on_repeated must be 'raise' or 'rollback', got {on_repeated!r}")
        if max_consecutive < 1:
            raise ValueError(f'NonFiniteGuardHook: max_consecutive must be >= 1, got {max_consecutive}')
        self.max_consecutive = max_consecutive
        self.on_repeated = on_repeated
        self.max_rollbacks = max_rollbacks
        self.skipped = 0  # in this run
        self.consecutive: list[int] = []  # iterations of the current streak
        self.rollbacks = 0
        self.deferred = False  # verdicts stay on the device until the logging interval (see the module docstring)
        self._pending: list[tuple[int, torch.Tensor]] = []  # (iteration, [loss, norm, loss_ok, grad_ok])
        self._interval = 1

    def before_train(self, runner) -> None:
        wrapper = runner.optim_wrapper
        if not isinstance(wrapper, OptimWrapper) or isinstance(wrapper, OptimWrapperDict):  # or DeepSpeed's
            runner.logger.warning(
                f'NonFiniteGuardHook guards an OptimWrapper or AmpOptimWrapper; {type(wrapper).__name__} is not guarded'
            )
            return

        self.deferred = _can_defer(wrapper)
        self._pending = []
        self._interval = logging_interval(runner)

        def update_params(loss, step_kwargs=None, zero_kwargs=None):
            # OptimWrapper.update_params with the check between backward and step
            wrapper.backward(wrapper.scale_loss(loss))
            if wrapper.should_update():
                if self.deferred:
                    self._step_on_device(runner, wrapper, loss, step_kwargs or {})
                else:
                    self._step_if_finite(runner, wrapper, loss, step_kwargs or {})
                wrapper.zero_grad(**(zero_kwargs or {}))

        wrapper.update_params = update_params

    def _verdict(self, wrapper, loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, total gradient norm, [loss finite, norm finite] agreed by all ranks), all on the device."""
        scaler = getattr(wrapper, 'loss_scaler', None)
        norm = total_grad_norm(wrapper.optimizer)  # of the scaled gradients under fp16 loss scaling
        if scaler is not None and scaler.is_enabled():
            norm = norm / scaler._get_scale_async().float()  # inf stays inf
        loss = loss.detach().float().to(norm.device)
        ok = torch.stack([torch.isfinite(loss), torch.isfinite(norm)]).float()
        if get_world_size() > 1:
            all_reduce(ok, op='min')  # a NaN on one rank skips the update on all
        return loss, norm, ok

    def _step_on_device(self, runner, wrapper, loss: torch.Tensor, step_kwargs: dict) -> None:
        """The sync-free update: the fused optimizer skips it on the device when the verdict is bad."""
        loss, norm, ok = self._verdict(wrapper, loss)
        optimizer = wrapper.optimizer
        if wrapper.clip_grad_kwargs:  # clip_grad_norm_'s arithmetic, from the norm already computed
            grads = [p.grad for g in optimizer.param_groups for p in g['params'] if p.grad is not None]
            if grads:
                coef = torch.clamp(wrapper.clip_grad_kwargs['max_norm'] / (norm + 1e-6), max=1.0)
                torch._foreach_mul_(grads, coef.to(grads[0].dtype))
        optimizer.found_inf = 1.0 - ok.min()  # 0-d; 1.0 -> the fused kernel leaves everything as it was
        try:
            optimizer.step(**step_kwargs)
        finally:
            del optimizer.found_inf
        self._pending.append((runner.iter + 1, torch.cat([loss[None], norm[None], ok])))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._pending and log_due(runner, batch_idx, self._interval):
            self.flush(runner)

    def after_train_epoch(self, runner) -> None:
        self.flush(runner)

    def after_train(self, runner) -> None:
        self.flush(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        self.flush(runner)

    def flush(self, runner) -> None:
        """Read the pending verdicts (one host sync) and act on them in iteration order: log, count, raise or roll
        back. After a rollback the remaining verdicts (steps of the rolled-back weights, all skipped on the device)
        are counted but start no new streak."""
        if not self._pending:
            return
        iterations = [i for i, _ in self._pending]
        values = torch.cat([t for _, t in self._pending]).tolist()  # the one sync: 4 values per iteration
        self._pending = []
        rolled_back = False
        for k, iteration in enumerate(iterations):
            loss_value, norm_value, loss_ok, grad_ok = values[4 * k : 4 * k + 4]
            if loss_ok and grad_ok:
                self.consecutive = []
                runner.message_hub.update_scalar('train/grad_norm', norm_value)
                runner.message_hub.update_scalar('train/nonfinite_skips', self.skipped)
                continue
            self.skipped += 1
            runner.message_hub.update_scalar('train/nonfinite_skips', self.skipped)
            if rolled_back:
                continue
            self.consecutive.append(iteration)
            self._warn(runner, iteration, loss_ok, grad_ok, loss_value, norm_value)
            if len(self.consecutive) >= self.max_consecutive:
                self._on_streak(runner, runner.optim_wrapper, iteration)
                rolled_back = True

    def _warn(self, runner, iteration: int, loss_ok, grad_ok, loss_value, norm_value) -> None:
        what = ' and '.join(n for n, good in (('loss', loss_ok), ('gradient norm', grad_ok)) if not good)
        runner.logger.warning(
            f'iteration {iteration}: non-finite {what} (loss={loss_value}, grad_norm={norm_value}); update skipped '
            f'({len(self.consecutive)} in a row, {self.skipped} in this run)'
        )

    def _on_streak(self, runner, wrapper, iteration: int) -> None:
        """``max_consecutive`` bad updates in a row: raise, or roll back (at most ``max_rollbacks`` times)."""
        streak = f'iterations {self.consecutive[0]}-{self.consecutive[-1]}'
        if self.on_repeated == 'raise' or self.rollbacks >= self.max_rollbacks:
            extra = f' after {self.rollbacks} rollbacks' if self.rollbacks else ''
            raise RuntimeError(
                f'iteration {iteration}: {len(self.consecutive)} non-finite updates in a row ({streak}){extra}. '
                'See "Non-finite losses: the NaN playbook" in docs/running_at_scale.md (bf16, clip_grad, lower lr, '
                "NonFiniteGuardHook(on_repeated='rollback'))."
            )
        self._rollback(runner, wrapper, iteration, streak)

    def _step_if_finite(self, runner, wrapper, loss: torch.Tensor, step_kwargs: dict) -> None:
        """The synchronous update: read the verdict now (other optimizers, fp16 loss scaling)."""
        scaler = getattr(wrapper, 'loss_scaler', None)
        scaling = scaler is not None and scaler.is_enabled()
        loss, norm, ok = self._verdict(wrapper, loss)
        loss_value, norm_value, loss_ok, grad_ok = torch.cat([loss[None], norm[None], ok]).tolist()  # the sync
        if loss_ok and grad_ok:
            wrapper.step(**step_kwargs)
            self.consecutive = []
            if not wrapper.clip_grad_kwargs:  # with clip_grad mmengine logs the same norm
                runner.message_hub.update_scalar('train/grad_norm', norm_value)
            runner.message_hub.update_scalar('train/nonfinite_skips', self.skipped)
            return
        iteration = runner.iter + 1
        if scaling:  # what GradScaler does on an overflow: no step, smaller scale
            scaler.update(scaler.get_scale() * scaler.get_backoff_factor())
            if loss_ok and scaler.get_scale() >= 1:
                # an fp16 overflow that loss scaling handles: skipped, not counted as a failure
                runner.logger.info(f'iteration {iteration}: fp16 gradient overflow, loss scale lowered')
                return
        self.skipped += 1
        self.consecutive.append(iteration)
        runner.message_hub.update_scalar('train/nonfinite_skips', self.skipped)
        self._warn(runner, iteration, loss_ok, grad_ok, loss_value, norm_value)
        if len(self.consecutive) >= self.max_consecutive:
            self._on_streak(runner, wrapper, iteration)

    def _rollback(self, runner, wrapper, iteration: int, streak: str) -> None:
        pointer = osp.join(runner.work_dir, 'last_checkpoint')
        if not osp.isfile(pointer):
            raise RuntimeError(
                f'iteration {iteration}: non-finite updates in a row ({streak}) and no checkpoint to roll back to '
                f'({pointer} does not exist)'
            )
        with open(pointer) as f:
            path = f.read().strip()
        checkpoint = load_checkpoint_weights_only(path)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model = getattr(model, '_orig_mod', model)  # torch.compile wrapper
        # keep the lr etc. of now: mmengine's schedulers compute the next value from the current one
        hyper = [{k: v for k, v in g.items() if k != 'params'} for g in wrapper.optimizer.param_groups]
        scaler = getattr(wrapper, 'loss_scaler', None)
        scale = scaler.get_scale() if scaler is not None and scaler.is_enabled() else None
        from mimlab.engine.parallel import is_sharded, load_full_state, load_sharded_state

        if checkpoint.get('sharded_state') is not None:  # FSDP2 run: weights and optimizer state in shards
            shard_dir = osp.join(osp.dirname(path), checkpoint['sharded_state']['dir'])
            load_sharded_state(model, wrapper.optimizer, shard_dir)
        elif is_sharded(model):
            load_full_state(model, wrapper.optimizer, checkpoint)
        else:
            model.load_state_dict(strip_wrapper_prefixes(checkpoint['state_dict']))
            wrapper.load_state_dict(checkpoint['optimizer'])
        for group, values in zip(wrapper.optimizer.param_groups, hyper, strict=True):
            group.update(values)
        if scale is not None:
            scaler.update(min(scale, scaler.get_scale()) / 2)
        self.rollbacks += 1
        self.consecutive = []
        runner.logger.warning(
            f'iteration {iteration}: non-finite updates in a row ({streak}); rolled back model and optimizer to '
            f'{path} (rollback {self.rollbacks} of at most {self.max_rollbacks})'
        )


def _can_defer(wrapper) -> bool:
    """Whether the update can be skipped on the device: a fused optimizer that takes ``found_inf`` (torch's fused
    Adam, AdamW, SGD, Adagrad), no fp16 loss scaling, and no gradient clipping other than by the total 2-norm."""
    scaler = getattr(wrapper, 'loss_scaler', None)
    if scaler is not None and scaler.is_enabled():
        return False
    if not getattr(wrapper.optimizer, '_step_supports_amp_scaling', False):
        return False
    if wrapper.clip_grad_kwargs:
        kwargs = dict(wrapper.clip_grad_kwargs)
        if getattr(wrapper, 'clip_func', None) is not torch.nn.utils.clip_grad_norm_ or 'max_norm' not in kwargs:
            return False
        if float(kwargs.pop('norm_type', 2.0)) != 2.0 or kwargs.pop('error_if_nonfinite', False):
            return False
        kwargs.pop('max_norm')
        kwargs.pop('foreach', None)
        if kwargs:
            return False
    return True
