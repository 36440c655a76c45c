"""Training-step benchmark: images/s, step time, data-wait fraction, FLOPs/image, MFU, peak memory.

Example: ``python tools/analysis_tools/benchmark.py configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py
--batch-size 16 --amp none --steps 5 --reference mmpretrain``. The numbers come from
:func:`mimlab.analysis.step_timing.benchmark_training`; ``--json`` also writes them to a file. mmpretrain, the
reference, is built in ``mmpretrain_reference.py`` next to this file.

Sharded or DDP runs: ``torchrun --nproc_per_node 2 tools/analysis_tools/benchmark.py CONFIG --launcher pytorch``
wraps the model as training does (``model_wrapper_cfg``: ``FullyShardWrapper`` in the ``fsdp`` recipes, DDP
otherwise) and reports each rank's step time, peak memory and the parameter + optimizer-state bytes it holds.
"""

import argparse
import json
import os.path as osp
import sys

from mmengine.config import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    parser.add_argument('--batch-size', type=int, help="per-device batch (default: the config's)")
    parser.add_argument('--amp', choices=('bf16', 'fp16', 'none'), default='none', help='autocast dtype')
    parser.add_argument('--compile', action='store_true', help='torch.compile the loss')
    parser.add_argument('--steps', type=int, default=10, help='measured steps')
    parser.add_argument('--warmup', type=int, default=2, help='unmeasured steps first')
    parser.add_argument('--data', choices=('synthetic', 'files'), default='synthetic', help='batch source')
    parser.add_argument('--reference', choices=('mmpretrain',), help='also time mmpretrain 1.2.0 on the same model')
    parser.add_argument('--device', choices=('cuda', 'cpu'), help='default: cuda when available')
    parser.add_argument(
        '--channels-last',
        choices=('on', 'off'),
        help="CNNs in channels_last memory format (default: on when the config's custom_hooks hold a ChannelsLastHook)",
    )
    parser.add_argument(
        '--launcher',
        choices=('none', 'pytorch', 'slurm'),
        default='none',
        help='several processes (torchrun / srun): the model wrapped as in training (model_wrapper_cfg, e.g. '
        'FullyShardWrapper; else DDP), with per-rank step time, peak memory and held bytes',
    )
    parser.add_argument('--json', help='write the results to this file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value ...')
    return parser.parse_args(argv)


def _mmpretrain_reference():
    """``mmpretrain_reference.py`` next to this tool (mmpretrain is a test-time reference: no mimlab code holds it)."""
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    import mmpretrain_reference

    return mmpretrain_reference


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mimlab.analysis.step_timing import benchmark_training, format_training
    from mimlab.apis import load_tool_config

    cfg = load_tool_config(args.config, args.cfg_options)
    if args.launcher != 'none':
        from mimlab.engine.launch import setup_distributed

        cfg.launcher = args.launcher
        setup_distributed(cfg)
    reference = _mmpretrain_reference().MMPRETRAIN if args.reference == 'mmpretrain' else None
    result = benchmark_training(
        cfg,
        batch_size=args.batch_size,
        amp=args.amp,
        compile=args.compile,
        steps=args.steps,
        warmup=args.warmup,
        data=args.data,
        reference=reference,
        device=args.device,
        channels_last=None if args.channels_last is None else args.channels_last == 'on',
    )
    from mmengine.dist import is_main_process

    if not is_main_process():
        return result
    print(format_training(result))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
