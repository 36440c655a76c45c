"""Per-iteration cost of weight EMA under FSDP2: building the local view vs handing out the cached one.

Example: ``python tools/analysis_tools/benchmark_ema_view.py
configs/a2mim/benchmarks/vit-large-p16_8xb64-accu2-amp-coslr-100e_in1k.py --json ema_view.json``.

The config's model is sharded with ``FullyShardWrapper`` (one process with a world of 1 unless started by a
launcher: ``torchrun --nproc_per_node N``), on the GPU when there is one. ``ShardedEMAHook`` (the config's EMA
settings if it has an ``EMAHook``, else mmengine's defaults) is set up as the runner sets it up, then timed:

- ``build_ms``: :func:`~mimlab.engine.parallel.local_view`, what every training iteration paid before the view was
  cached (one module per name and one ``nn.Parameter`` per tensor);
- ``cached_ms``: ``hook.src_model`` now (reshard, then compare each local tensor with the view's);
- ``update_ms``: the whole ``after_train_iter`` (the cached view plus the average's update on this rank's shards).

Medians over ``--repeats`` calls after ``--warmup`` ones; rank 0 prints one JSON line (and writes ``--json``).
"""

import argparse
import json
import os
import statistics
import time
from types import SimpleNamespace

import torch
import torch.distributed as dist
from mmengine.config import Config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config whose model is sharded')
    parser.add_argument('--repeats', type=int, default=50, help='timed calls of each kind; the median counts')
    parser.add_argument('--warmup', type=int, default=3, help='untimed calls before each kind')
    parser.add_argument('--json', help='also write the result to this file (rank 0)')
    return parser.parse_args(argv)


def _median_ms(fn, repeats: int, warmup: int, sync) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mimlab.apis import register_all_modules
    from mimlab.engine.parallel import FullyShardWrapper, ShardedEMAHook, local_view
    from mimlab.registry import MODELS

    cuda = torch.cuda.is_available()
    if 'RANK' not in os.environ:  # one process: a world of 1
        os.environ.update(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1')
        os.environ.setdefault('MASTER_PORT', '29533')
    if cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    dist.init_process_group('nccl' if cuda else 'gloo')
    register_all_modules()
    cfg = Config.fromfile(args.config)
    model = MODELS.build(cfg.model)
    if cuda:
        model = model.cuda()
    wrapper = FullyShardWrapper(model, init_weights=False)  # the weights do not matter here
    ema_cfg = next((dict(h) for h in cfg.get('custom_hooks', []) if h.get('type') == 'EMAHook'), {})
    ema_cfg.pop('type', None)
    hook = ShardedEMAHook(**ema_cfg)
    runner = SimpleNamespace(model=wrapper, iter=10**6, epoch=10**3)  # past any EMA begin_iter / begin_epoch
    hook.before_run(runner)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    n = args.repeats, args.warmup, sync
    result = dict(
        config=args.config,
        device=torch.cuda.get_device_name() if cuda else 'cpu',
        world_size=dist.get_world_size(),
        threads=torch.get_num_threads(),
        tensors=sum(1 for _ in model.parameters()) + sum(1 for _ in model.buffers()),
        build_ms=_median_ms(lambda: local_view(model), *n),
        cached_ms=_median_ms(lambda: hook.src_model, *n),
        update_ms=_median_ms(lambda: hook.after_train_iter(runner, 0), *n),
    )
    result['build_over_cached'] = result['build_ms'] / result['cached_ms']
    if dist.get_rank() == 0:
        print(json.dumps(result))
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(result, f, indent=1)
    dist.destroy_process_group()
    return result


if __name__ == '__main__':
    main()
