"""One MAE training step (``train_step``: preprocess, forward, backward, optimizer) never waits for the device.

Every way a tensor's value reaches Python goes through ``aten._local_scalar_dense`` (``item``, ``bool``, ``int``,
``float``, ``tolist`` of a scalar ...) or a copy to the host (``.cpu()``, ``.numpy()``, ``.tolist()``); ops with
data-dependent output shapes (``nonzero``, ``masked_select``, ``unique``) sync on CUDA too. The test counts all of
them during a step of the tiny MAE on the CPU. The optimizer's ``step`` counters are exempt: torch keeps them on the
host for every device (reading one is not a device sync), and the fused kernels do not read them at all.
"""

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from mimlab.registry import OPTIM_WRAPPER_CONSTRUCTORS
from tests.helpers import tiny_mae

_SYNC_OPS = {'_local_scalar_dense', 'nonzero', 'masked_select', 'unique', '_unique2', 'unique_consecutive', 'item'}
_HOST_COPIES = {'cpu', 'numpy', 'tolist', 'item', '__bool__', '__int__', '__float__', '__index__'}


class _Dispatch(TorchDispatchMode):
    def __init__(self, exempt: set[int]):
        super().__init__()
        self.exempt, self.calls = exempt, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split('.')[0]
        if name in _SYNC_OPS and not (args and id(args[0]) in self.exempt):
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


class _Function(TorchFunctionMode):
    def __init__(self, exempt: set[int]):
        super().__init__()
        self.exempt, self.calls = exempt, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, '__name__', '')
        if name in _HOST_COPIES and not (args and id(args[0]) in self.exempt):
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def _optim_wrapper(model, **optimizer):
    return OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='LayerDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(
                type='OptimWrapper',
                optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05, **optimizer),
            ),
        )
    )(model)


def _count_syncs(model, wrapper, data) -> list[str]:
    model.train_step(data, wrapper)  # creates the optimizer state
    exempt = {id(s['step']) for s in wrapper.optimizer.state.values() if 'step' in s}
    with _Function(exempt) as fn, _Dispatch(exempt) as disp:
        log_vars = model.train_step(data, wrapper)
    assert torch.isfinite(log_vars['loss'])
    return fn.calls + disp.calls


def test_mae_train_step_has_no_host_sync():
    torch.manual_seed(0)
    model = tiny_mae()
    data = dict(inputs=torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), data_samples=None)
    wrapper = _optim_wrapper(model)
    assert wrapper.optimizer.defaults['fused'] is True  # chosen by the constructor for CPU parameters
    assert _count_syncs(model, wrapper, data) == []


def test_the_counter_sees_syncs():
    """A loss that reads a value on the host (``if loss > x``) and the unfused AdamW's step counters are caught."""
    torch.manual_seed(0)
    model = tiny_mae()
    data = dict(inputs=torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), data_samples=None)
    wrapper = _optim_wrapper(model, foreach=False)
    loss_fn = model.loss

    def syncing_loss(inputs, data_samples=None):
        losses = loss_fn(inputs, data_samples)
        if losses['loss'] > 1e9:  # Tensor.__bool__: a device sync on CUDA
            raise AssertionError
        losses['loss'].item()  # a host read (e.g. logging every step)
        return losses

    model.loss = syncing_loss
    model.train_step(data, wrapper)
    with _Function(set()) as fn, _Dispatch(set()) as disp:
        model.train_step(data, wrapper)
    assert '__bool__' in fn.calls and 'item' in fn.calls
    assert disp.calls.count('_local_scalar_dense') >= 2 + len(wrapper.optimizer.state)  # + one per step counter


def test_mixmim_train_step_has_no_host_sync():
    """The mixing mask is drawn on the device and its size is a Python int: no sync in MixMIM's step either."""
    from pathlib import Path

    from mmengine.config import Config

    from mimlab.registry import MODELS

    cfg = Config.fromfile(
        str(Path(__file__).parents[1] / 'configs/demo/mixmim_mixmim-test_1xb64-coslr-10e_builtin-64px.py')
    )
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    data = dict(inputs=torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8), data_samples=None)
    assert _count_syncs(model, _optim_wrapper(model), data) == []


class _CountPerIteration:
    """A hook that counts host syncs from the last ``before_train_iter`` hook to the last ``after_train_iter`` hook,
    i.e. over ``train_step`` and every other hook of the iteration."""

    priority = 'LOWEST'

    def __init__(self):
        self.per_iteration: dict[int, list[str]] = {}
        self._modes = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._modes = (_Function(set()), _Dispatch(set()))
        for mode in self._modes:
            mode.__enter__()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        for mode in reversed(self._modes):
            mode.__exit__(None, None, None)
        self.per_iteration[runner.iter + 1] = self._modes[0].calls + self._modes[1].calls


def test_runner_iterations_sync_only_when_the_logger_logs(tmp_path):
    """A whole training iteration in mmengine's Runner with the default hooks and the NaN guard: no host sync, except
    at the iterations where the LoggerHook logs (every 4th here), where the losses and verdicts are read in one go."""
    from mmengine.hooks import Hook

    from mimlab.engine.hooks import NonFiniteGuardHook
    from tests.test_guard_and_checkpoints import demo_runner

    counter = type('Counter', (_CountPerIteration, Hook), {})()
    guard = NonFiniteGuardHook()
    runner = demo_runner(tmp_path, guard, counter, epochs=2, **{'default_hooks.logger.interval': 4})
    torch.set_num_threads(1)
    runner.train()
    assert guard.deferred
    quiet = {i: calls for i, calls in counter.per_iteration.items() if i % 4}
    assert len(quiet) == 6 and all(calls == [] for calls in quiet.values()), quiet
    for i in (4, 8):  # the read: one .tolist() each for the losses and for the guard's verdicts
        assert counter.per_iteration[i].count('tolist') == 2, counter.per_iteration[i]
