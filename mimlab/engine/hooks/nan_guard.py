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

Cost: one fused norm over the gradients (``torch._foreach_norm``) and one host sync per update to read the verdict
and the norm together (plus one scalar all-reduce when distributed, so that all ranks skip together). fp16 training
pays the same sync already (``GradScaler.step`` reads its inf flag); measured numbers are in
``docs/running_at_scale.md``.
"""

import os.path as osp

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict

from mimlab.engine.hooks.train_state import strip_wrapper_prefixes
from mimlab.registry import HOOKS
from mimlab.utils.checkpoint import load_checkpoint_weights_only

__all__ = ['NonFiniteGuardHook', 'total_grad_norm']


def total_grad_norm(optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """The L2 norm of all gradients of ``optimizer``'s parameters, as a 0-d fp32 tensor on their device (no sync)."""
    grads = [p.grad for group in optimizer.param_groups for p in group['params'] if p.grad is not None]
    if not grads:
        return torch.zeros(())
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

    def before_train(self, runner) -> None:
        wrapper = runner.optim_wrapper
        if not isinstance(wrapper, OptimWrapper) or isinstance(wrapper, OptimWrapperDict):  # or DeepSpeed's
            runner.logger.warning(
                f'NonFiniteGuardHook guards an OptimWrapper or AmpOptimWrapper; {type(wrapper).__name__} is not guarded'
            )
            return

        def update_params(loss, step_kwargs=None, zero_kwargs=None):
            # OptimWrapper.update_params with the check between backward and step
            wrapper.backward(wrapper.scale_loss(loss))
            if wrapper.should_update():
                self._step_if_finite(runner, wrapper, loss, step_kwargs or {})
                wrapper.zero_grad(**(zero_kwargs or {}))

        wrapper.update_params = update_params

    def _step_if_finite(self, runner, wrapper, loss: torch.Tensor, step_kwargs: dict) -> None:
        scaler = getattr(wrapper, 'loss_scaler', None)
        scaling = scaler is not None and scaler.is_enabled()
        norm = total_grad_norm(wrapper.optimizer)  # of the scaled gradients under fp16 loss scaling
        if scaling:
            norm = norm / scaler._get_scale_async().float()  # inf stays inf
        loss = loss.detach().float().to(norm.device)
        ok = torch.stack([torch.isfinite(loss), torch.isfinite(norm)]).float()
        if get_world_size() > 1:
            all_reduce(ok, op='min')  # a NaN on one rank skips the update on all
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
        what = ' and '.join(n for n, good in (('loss', loss_ok), ('gradient norm', grad_ok)) if not good)
        runner.logger.warning(
            f'iteration {iteration}: non-finite {what} (loss={loss_value}, grad_norm={norm_value}); update skipped '
            f'({len(self.consecutive)} in a row, {self.skipped} in this run)'
        )
        if len(self.consecutive) < self.max_consecutive:
            return
        streak = f'iterations {self.consecutive[0]}-{self.consecutive[-1]}'
        if self.on_repeated == 'raise' or self.rollbacks >= self.max_rollbacks:
            extra = f' after {self.rollbacks} rollbacks' if self.rollbacks else ''
            raise RuntimeError(
                f'iteration {iteration}: {len(self.consecutive)} non-finite updates in a row ({streak}){extra}. '
                'See "Non-finite losses: the NaN playbook" in docs/running_at_scale.md (bf16, clip_grad, lower lr, '
                "NonFiniteGuardHook(on_repeated='rollback'))."
            )
        self._rollback(runner, wrapper, iteration, streak)

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
        model.load_state_dict(strip_wrapper_prefixes(checkpoint['state_dict']))
        # keep the lr etc. of now: mmengine's schedulers compute the next value from the current one
        hyper = [{k: v for k, v in g.items() if k != 'params'} for g in wrapper.optimizer.param_groups]
        scaler = getattr(wrapper, 'loss_scaler', None)
        scale = scaler.get_scale() if scaler is not None and scaler.is_enabled() else None
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
