"""Evaluate a checkpoint: python tools/test.py CONFIG CHECKPOINT [options]."""

import argparse
import os

if __name__ == '__main__':  # re-run under the checkout's .venv when this Python lacks the install
    import use_venv  # noqa: F401

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a mimlab model')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where logs go (default ./work_dirs/<config name>)')
    parser.add_argument('--out', help='write the predictions (a .pkl file) or, with --out-item metrics, the metrics')
    parser.add_argument(
        '--out-item', choices=['pred', 'metrics'], default='pred', help='what --out holds (default: pred)'
    )
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value ...')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = parser.parse_args(argv)
    # torch.distributed.launch passes --local-rank instead of setting the variable mmengine reads
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    import mmengine

    from mimlab.engine.config_checks import fail_once
    from mimlab.engine.config_paths import resolve_config_path
    from mimlab.engine.launch import build_runner, check_test_checkpoint, merge_test_args
    from mimlab.utils import check_checkpoint_file, finish_dist

    with fail_once():  # the same error on every rank: printed once
        args.config = resolve_config_path(args.config)
        cfg = merge_test_args(Config.fromfile(args.config), args)
        check_checkpoint_file(args.checkpoint)
        check_test_checkpoint(cfg, args.checkpoint)
    metrics = build_runner(cfg).test()
    finish_dist()
    if args.out and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out)


if __name__ == '__main__':
    main()
