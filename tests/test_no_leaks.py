"""A 2,000-iteration CPU run with persistent dataloader workers keeps its resident memory flat."""

import os
import uuid
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mimlab.engine.hooks import NonFiniteGuardHook

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / 'configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py'
MB = 2**20


def rss(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes (Linux /proc)."""
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f'no VmRSS in /proc/{pid}/status')


def children(pid: int) -> list[int]:
    pids = []
    for task in Path(f'/proc/{pid}/task').iterdir():
        pids += [int(p) for p in (task / 'children').read_text().split()]
    return pids


class MemoryProbe(Hook):
    """RSS of this process and the sum over its dataloader workers after the given (1-based) iterations."""

    priority = 'LOWEST'

    def __init__(self, at):
        self.at = set(at)
        self.main, self.workers, self.pids = {}, {}, {}
        self.others = set(children(os.getpid()))  # e.g. a multiprocessing resource tracker left by earlier tests

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        it = runner.iter + 1
        if it in self.at:
            workers = [p for p in children(os.getpid()) if p not in self.others]
            self.main[it] = rss(os.getpid())
            self.workers[it] = sum(rss(p) for p in workers)
            self.pids[it] = set(workers)


def test_two_thousand_iterations_keep_memory_flat(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # restored below; the tiny model gains nothing from threads
    cfg = Config.fromfile(DEMO)
    cfg.model.backbone.update(arch='test', img_size=16, patch_size=4)
    cfg.model.neck.update(decoder_embed_dims=16, decoder_depth=1, decoder_num_heads=2)
    cfg.train_pipeline[0].scale = 16
    loader = cfg.train_dataloader
    loader.update(batch_size=8, num_workers=2, persistent_workers=True)
    loader.dataset.update(num_samples=64, img_size=24, pipeline=cfg.train_pipeline)  # 8 iterations per epoch
    probe = MemoryProbe(at=(500, 1000, 2000))
    runner = Runner(
        model=cfg.model,
        work_dir=str(tmp_path),
        experiment_name=f'test_{uuid.uuid4().hex[:8]}',
        train_dataloader=loader,
        optim_wrapper=cfg.optim_wrapper,
        param_scheduler=cfg.param_scheduler,
        train_cfg=dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=250),  # 2,000 iterations, 250 epoch turnovers
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1000), checkpoint=None),
        custom_hooks=[NonFiniteGuardHook(), probe],
        default_scope='mimlab',
        randomness=dict(seed=0),
    )
    try:
        runner.train()
    finally:
        torch.set_num_threads(threads)
    print(
        'RSS MB: main',
        {k: v / MB for k, v in probe.main.items()},
        'workers',
        {k: v / MB for k, v in probe.workers.items()},
    )
    assert len(probe.pids[500]) == 2 and probe.pids[500] == probe.pids[1000] == probe.pids[2000]  # persistent workers
    # A leak of one 8-image uint8 batch (8 x 3 x 24 x 24 = 14 KB) per iteration would grow a process by 21 MB over
    # these 1,500 iterations; measured growth is below 0.5 MB (allocator noise after warm-up).
    assert probe.main[2000] - probe.main[500] < 8 * MB, probe.main
    assert probe.workers[2000] - probe.workers[500] < 8 * MB, probe.workers
