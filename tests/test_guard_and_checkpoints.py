"""NonFiniteGuardHook and AtomicCheckpointHook inside a real mmengine Runner training the tiny demo MAE on CPU."""

import uuid
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from mimlab.engine.hooks import AtomicCheckpointHook, NonFiniteGuardHook
from mimlab.utils import load_checkpoint_weights_only

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / 'configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py'


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the tiny model gains nothing from more, and they spin against other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def demo_runner(work_dir, *hooks, epochs=2, checkpoint=None, **options) -> Runner:
    """The demo MAE, 4 iterations of 16 images per epoch, no workers; ``hooks`` are hook objects."""
    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict(
        {
            'train_dataloader.batch_size': 16,
            'train_dataloader.num_workers': 0,
            'train_dataloader.persistent_workers': False,
            'train_dataloader.dataset.num_samples': 64,
            'train_cfg.max_epochs': epochs,
            'default_hooks.logger.interval': 1,
            **options,
        }
    )
    default_hooks = dict(cfg.default_hooks, checkpoint=checkpoint)
    default_hooks.pop('nan_guard', None)  # the tests add their own
    return Runner(
        model=cfg.model,
        work_dir=str(work_dir),
        experiment_name=f'test_{uuid.uuid4().hex[:8]}',
        train_dataloader=cfg.train_dataloader,
        optim_wrapper=cfg.optim_wrapper,
        param_scheduler=cfg.param_scheduler,
        train_cfg=cfg.train_cfg,
        default_hooks=default_hooks,
        custom_hooks=list(hooks),
        log_processor=cfg.log_processor,
        default_scope='mimlab',
        randomness=dict(seed=0),
    )


class PoisonHook(Hook):
    """Multiplies the decoder output by NaN at the given (1-based) iterations: loss and all gradients turn NaN."""

    def __init__(self, iterations):
        self.iterations = set(iterations)
        self.handle = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 in self.iterations:
            # the decoder's last layer: MAE's masked-only path calls neck.forward_at, not the neck's forward
            pred = runner.model.neck.decoder_pred
            self.handle = pred.register_forward_hook(lambda m, args, out: out * float('nan'))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


class Snapshots(Hook):
    """The model weights after every iteration, by 1-based iteration (0 = before training)."""

    priority = 'LOWEST'

    def __init__(self):
        self.weights = {}

    def before_train(self, runner):
        self.weights[0] = {k: v.clone() for k, v in runner.model.state_dict().items()}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.weights[runner.iter + 1] = {k: v.clone() for k, v in runner.model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def log_text(work_dir) -> str:
    return ''.join(p.read_text() for p in Path(work_dir).glob('*/*.log'))


def test_guard_skips_a_nan_update_and_logs_it(tmp_path):
    snaps, guard = Snapshots(), NonFiniteGuardHook(max_consecutive=3)
    runner = demo_runner(tmp_path, guard, PoisonHook([3]), snaps)
    runner.train()
    w = snaps.weights
    assert same(w[3], w[2])  # the poisoned update was not applied ...
    assert not same(w[4], w[3]) and all(torch.isfinite(v).all() for v in w[8].values())  # ... and training goes on
    steps = {int(s['step']) for s in runner.optim_wrapper.optimizer.state_dict()['state'].values()}
    assert steps == {7}  # AdamW's step count and moments did not move at iteration 3
    assert guard.skipped == 1
    hub = runner.message_hub
    assert hub.get_scalar('train/nonfinite_skips').current() == 1
    assert hub.get_scalar('train/grad_norm').current() > 0
    log = log_text(tmp_path)
    assert 'iteration 3: non-finite loss and gradient norm (loss=nan, grad_norm=nan); update skipped' in log
    assert 'grad_norm:' in log and 'nonfinite_skips: 1' in log  # logged with the scalars at each log interval


def test_guard_raises_with_the_iterations(tmp_path):
    runner = demo_runner(tmp_path, NonFiniteGuardHook(max_consecutive=3), PoisonHook(range(3, 9)))
    with pytest.raises(RuntimeError, match=r'iteration 5: 3 non-finite updates in a row \(iterations 3-5\)'):
        runner.train()


def test_guard_rolls_back_to_the_last_checkpoint_and_continues(tmp_path):
    snaps = Snapshots()
    guard = NonFiniteGuardHook(max_consecutive=3, on_repeated='rollback')
    runner = demo_runner(
        tmp_path,
        guard,
        PoisonHook([6, 7, 8]),
        snaps,
        epochs=3,
        checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=4),
    )
    runner.train()
    saved = load_checkpoint_weights_only(str(tmp_path / 'iter_4.pth'))['state_dict']
    w = snaps.weights
    assert not same(w[5], saved)  # iteration 5 was a good update after the checkpoint
    assert same(w[8], saved)  # the rollback at iteration 8 restored the checkpoint of iteration 4
    assert not same(w[9], w[8]) and all(torch.isfinite(v).all() for v in w[12].values())
    assert guard.rollbacks == 1 and guard.skipped == 3
    assert f'rolled back model and optimizer to {tmp_path / "iter_4.pth"}' in log_text(tmp_path)
    # the lr schedule went on as if nothing happened (the restored optimizer state carries the old lr)
    lr = [g['lr'] for g in runner.optim_wrapper.optimizer.param_groups]
    fresh = demo_runner(tmp_path / 'fresh', epochs=3)
    fresh.train()
    assert lr == [g['lr'] for g in fresh.optim_wrapper.optimizer.param_groups]


class FakeClock(Hook):
    """30 seconds pass before each iteration; after each, ``last_checkpoint`` must name a complete checkpoint."""

    priority = 'LOWEST'  # after the checkpoint hook

    def __init__(self):
        self.now = 0.0
        self.pointed = []

    def __call__(self) -> float:
        return self.now

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.now += 30

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._check(runner)

    def after_train_epoch(self, runner):
        self._check(runner)

    def _check(self, runner):
        pointer = Path(runner.work_dir) / 'last_checkpoint'
        if pointer.exists():
            path = pointer.read_text()
            load_checkpoint_weights_only(path)  # complete and loadable
            if not self.pointed or self.pointed[-1] != Path(path).name:
                self.pointed.append(Path(path).name)


def test_timed_checkpoints_appear_every_interval_and_are_pruned(tmp_path):
    clock = FakeClock()
    hook = AtomicCheckpointHook(interval=1, max_keep_ckpts=3, interval_minutes=1, check_every=1, time_fn=clock)
    runner = demo_runner(tmp_path, clock, checkpoint=hook)
    runner.train()
    # 30 s per iteration, 4 iterations per epoch: a minute has passed at iterations 2, 4, 6 and 8; at 4 and 8 the
    # epoch checkpoint is due anyway and is the only one written
    assert clock.pointed == ['iter_2.pth', 'epoch_1.pth', 'iter_6.pth', 'epoch_2.pth']
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_1.pth', 'epoch_2.pth', 'iter_6.pth']
    assert not list(tmp_path.glob('.*.tmp'))
    meta = load_checkpoint_weights_only(str(tmp_path / 'iter_6.pth'))['meta']
    assert (meta['epoch'], meta['iter']) == (1, 6)  # one epoch done, resumes at batch 3 of epoch 2
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'epoch_2.pth')
    assert runner.message_hub.get_info('kept_checkpoints') == [
        str(tmp_path / n) for n in ('epoch_1.pth', 'iter_6.pth', 'epoch_2.pth')
    ]


def test_timed_checkpoint_hook_rejects_bad_intervals():
    with pytest.raises(ValueError, match='interval_minutes'):
        AtomicCheckpointHook(interval_minutes=0)
    with pytest.raises(ValueError, match='on_repeated'):
        NonFiniteGuardHook(on_repeated='ignore')


def test_guard_is_on_in_the_default_runtime_and_can_be_switched_off():
    from tests.test_train_tools import train_cfg

    assert train_cfg(str(DEMO)).default_hooks.nan_guard == dict(type='NonFiniteGuardHook')
    # mmengine asserts on None for hooks it does not know; merge_train_args leaves such entries out
    assert 'nan_guard' not in train_cfg(str(DEMO), '--cfg-options', 'default_hooks.nan_guard=None').default_hooks


def test_weights_only_loading_keeps_the_process_wide_allow_list(tmp_path):
    """Loading one checkpoint with mimlab's helper must not break mmengine's own resume later in the process."""
    from mmengine.logging import HistoryBuffer

    torch.save({'meta': {}}, tmp_path / 'c.pth')
    load_checkpoint_weights_only(str(tmp_path / 'c.pth'))
    assert HistoryBuffer in torch.serialization.get_safe_globals()


class CpuLossScaler(Hook):
    """Gives the AmpOptimWrapper a real dynamic GradScaler on the CPU (mmengine's is CUDA's, which disables itself
    without a GPU), makes the gradients of iteration ``overflow_at`` infinite with a finite loss (an fp16 overflow),
    and records the scale after each iteration."""

    priority = 'HIGHEST'

    def __init__(self, overflow_at: int):
        self.overflow_at, self.scales, self.handle = overflow_at, [], None

    def before_train(self, runner):
        runner.optim_wrapper.loss_scaler = torch.amp.GradScaler('cpu', init_scale=2.0**16)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.overflow_at:
            weight = runner.model.neck.decoder_pred.weight
            self.handle = weight.register_hook(lambda g: g * float('inf'))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
        self.scales.append(runner.optim_wrapper.loss_scaler.get_scale())


def test_guard_with_loss_scaling_lowers_the_scale_and_counts_only_real_failures(tmp_path, monkeypatch):
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_module

    monkeypatch.setattr(amp_module, 'is_cuda_available', lambda: True)  # the wrapper asserts a GPU
    scaler, guard, snaps = CpuLossScaler(overflow_at=2), NonFiniteGuardHook(max_consecutive=2), Snapshots()
    amp = {
        'optim_wrapper.type': 'AmpOptimWrapper',
        'optim_wrapper.dtype': 'bfloat16',
        'optim_wrapper.loss_scale': 'dynamic',
    }
    runner = demo_runner(tmp_path, scaler, guard, PoisonHook([4]), snaps, **amp)
    runner.train()
    w = snaps.weights
    assert same(w[2], w[1]) and same(w[4], w[3]) and not same(w[5], w[4])
    # iteration 2: gradient overflow with a finite loss -> skipped and scale halved, as GradScaler does, not counted;
    # iteration 4: NaN loss -> skipped, halved and counted
    assert scaler.scales == [2.0**16, 2.0**15, 2.0**15, 2.0**14, 2.0**14, 2.0**14, 2.0**14, 2.0**14]
    assert guard.skipped == 1
    assert 'iteration 2: fp16 gradient overflow, loss scale lowered' in log_text(tmp_path)


# --- the deferred (sync-free) mode: verdicts read once per logging interval ---------------------------------------


def test_deferred_guard_skips_on_the_device_and_reports_at_the_log_interval(tmp_path):
    """Logging every 4 iterations: the poisoned update of iteration 2 is skipped at once by the fused kernel
    (``found_inf``), and the warning naming iteration 2 comes with the read at iteration 4."""
    snaps, guard = Snapshots(), NonFiniteGuardHook(max_consecutive=3)
    runner = demo_runner(tmp_path, guard, PoisonHook([2]), snaps, **{'default_hooks.logger.interval': 4})
    runner.train()
    assert guard.deferred and guard.skipped == 1
    w = snaps.weights
    assert same(w[2], w[1]) and not same(w[3], w[2])
    steps = {int(s['step']) for s in runner.optim_wrapper.optimizer.state_dict()['state'].values()}
    assert steps == {7}
    log = log_text(tmp_path)
    assert 'iteration 2: non-finite loss and gradient norm (loss=nan, grad_norm=nan); update skipped' in log
    assert 'nonfinite_skips: 1' in log
    assert len(runner.message_hub.get_scalar('train/grad_norm').data[0]) == 7  # every good iteration's norm


def test_deferred_guard_raises_at_the_read_with_the_iterations(tmp_path):
    guard = NonFiniteGuardHook(max_consecutive=3)
    runner = demo_runner(tmp_path, guard, PoisonHook(range(2, 9)), **{'default_hooks.logger.interval': 4})
    with pytest.raises(RuntimeError, match=r'iteration 4: 3 non-finite updates in a row \(iterations 2-4\)'):
        runner.train()
    assert guard.deferred


def test_deferred_guard_clips_like_clip_grad_norm(tmp_path):
    """With clip_grad the deferred guard clips on the device; the run equals one without the guard, where
    mmengine's OptimWrapper calls torch.nn.utils.clip_grad_norm_ (which also reads the norm on the host)."""
    clip = {'optim_wrapper.clip_grad': dict(max_norm=0.05), 'default_hooks.logger.interval': 4}
    guard = NonFiniteGuardHook()
    guarded = demo_runner(tmp_path / 'a', guard, **clip)
    guarded.train()
    plain = demo_runner(tmp_path / 'b', **clip)
    plain.train()
    assert guard.deferred and guard.skipped == 0
    a, b = guarded.model.state_dict(), plain.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-7, msg=k)
    norms_a = guarded.message_hub.get_scalar('train/grad_norm').data[0]
    norms_b = plain.message_hub.get_scalar('train/grad_norm').data[0]
    assert len(norms_a) == len(norms_b) == 8 and max(norms_b) > 0.05  # clipping was active
    assert norms_a.tolist() == pytest.approx(norms_b.tolist(), rel=1e-5)


def test_deferred_losses_reach_the_log_unchanged(tmp_path):
    """mimlab's DeferredRuntimeInfoHook (default_hooks.runtime_info) reads the losses once per logging
    interval; the message hub ends up with every iteration's loss, as with a read every iteration."""
    from mimlab.engine.hooks import DeferredRuntimeInfoHook

    every = demo_runner(tmp_path / 'a')
    every.train()
    deferred = demo_runner(tmp_path / 'b', **{'default_hooks.logger.interval': 3})
    deferred.train()
    assert any(isinstance(h, DeferredRuntimeInfoHook) for h in deferred.hooks)
    a = every.message_hub.get_scalar('train/loss').data[0].tolist()
    b = deferred.message_hub.get_scalar('train/loss').data[0].tolist()
    assert len(a) == len(b) == 8 and a == b


# ---------------------------------------------------------------- configs that name mmengine's classes (old names)

SMALL = [
    'train_dataloader.batch_size=16',
    'train_dataloader.num_workers=0',
    'train_dataloader.dataset.num_samples=32',
    'train_cfg.max_epochs=2',
    'default_hooks.logger.interval=1',
]


def built(work_dir, *options) -> Runner:
    """The demo MAE through tools/train.py's path (merge_train_args, build_runner), with ``options`` merged."""
    from mimlab.engine import build_runner
    from tests.test_train_tools import train_cfg

    cfg = train_cfg(str(DEMO), '--work-dir', str(work_dir), '--cfg-options', *SMALL, *options)
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:8]}'
    return build_runner(cfg)


def test_configs_name_mimlabs_classes_and_old_names_build_mmenginess():
    from mmengine.dataset import DefaultSampler
    from mmengine.hooks import CheckpointHook, RuntimeInfoHook
    from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

    from mimlab.datasets import ExactResumeSampler
    from mimlab.engine import DeferredRuntimeInfoHook, ExactResumeEpochBasedTrainLoop, ExactResumeIterBasedTrainLoop
    from mimlab.registry import DATA_SAMPLERS, HOOKS, LOOPS

    with DefaultScope.overwrite_default_scope('mimlab'):
        for registry, ours, theirs in [
            (HOOKS, AtomicCheckpointHook, CheckpointHook),
            (HOOKS, DeferredRuntimeInfoHook, RuntimeInfoHook),
            (DATA_SAMPLERS, ExactResumeSampler, DefaultSampler),
            (LOOPS, ExactResumeEpochBasedTrainLoop, EpochBasedTrainLoop),
            (LOOPS, ExactResumeIterBasedTrainLoop, IterBasedTrainLoop),
        ]:
            assert registry.get(ours.__name__) is ours and issubclass(ours, theirs)
            assert registry.get(theirs.__name__) is theirs  # no longer shadowed: a config gets what it names
    cfg = Config.fromfile(DEMO)
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.default_hooks.runtime_info.type == 'DeferredRuntimeInfoHook'
    assert cfg.train_dataloader.sampler.type == 'ExactResumeSampler'
    assert cfg.train_cfg.type == 'ExactResumeEpochBasedTrainLoop'


def test_preemption_refuses_mmengines_checkpoint_hook_at_the_start(tmp_path):
    runner = built(tmp_path, "default_hooks.checkpoint.type='CheckpointHook'")
    with pytest.raises(ValueError, match=r"default_hooks.checkpoint.type='AtomicCheckpointHook' \(type='Checkpoint"):
        runner.train()
    assert not list(tmp_path.glob('*.pth'))  # refused before the first iteration
    # without preemption, mmengine's hook is what the config asks for, and trains
    runner = built(tmp_path / 'b', "default_hooks.checkpoint.type='CheckpointHook'", 'default_hooks.preemption=None')
    runner.train()
    assert type(next(h for h in runner.hooks if 'Checkpoint' in type(h).__name__)).__module__.startswith('mmengine')
    assert (tmp_path / 'b/epoch_2.pth').exists()


@pytest.mark.parametrize(
    'options, key',
    [
        ([], 'default_hooks.preemption'),
        (['default_hooks.preemption=None', 'default_hooks.checkpoint.interval_minutes=30'], 'interval_minutes'),
        (['default_hooks.preemption=None', 'default_hooks.checkpoint.by_epoch=False'], r'by_epoch=False'),
    ],
)
def test_mid_epoch_checkpoints_refuse_mmengines_epoch_loop(tmp_path, options, key):
    runner = built(tmp_path, "train_cfg.type='EpochBasedTrainLoop'", *options)
    with pytest.raises(ValueError, match=rf"{key}.*set train_cfg.type='ExactResumeEpochBasedTrainLoop'"):
        runner.train()


def test_mmengines_loop_sampler_and_runtime_hook_still_train_with_plain_checkpoint_keys(tmp_path):
    """Epoch checkpoints only (no preemption, no time interval): mmengine's loop is fine; build_runner registers the
    TrainStateHook that mimlab's loops would, so the checkpoint holds the RNG states and plain keys."""
    from mmengine.dataset import DefaultSampler
    from mmengine.hooks import RuntimeInfoHook
    from mmengine.runner import EpochBasedTrainLoop

    from mimlab.engine import ExactResumeEpochBasedTrainLoop, TrainStateHook

    runner = built(
        tmp_path,
        "train_cfg.type='EpochBasedTrainLoop'",
        "train_dataloader.sampler.type='DefaultSampler'",
        "default_hooks.runtime_info.type='RuntimeInfoHook'",
        'default_hooks.preemption=None',
    )
    runner.train()
    assert type(runner.train_loop) is EpochBasedTrainLoop and not isinstance(
        runner.train_loop, ExactResumeEpochBasedTrainLoop
    )
    assert type(runner.train_dataloader.sampler) is DefaultSampler
    assert any(type(h) is RuntimeInfoHook for h in runner.hooks)
    assert sum(isinstance(h, TrainStateHook) for h in runner.hooks) == 1
    ckpt = load_checkpoint_weights_only(str(tmp_path / 'epoch_2.pth'))
    assert 'rng_state' in ckpt and list(ckpt['state_dict']) == list(runner.model.state_dict())
