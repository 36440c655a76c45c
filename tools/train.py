"""Train a model from a config: python tools/train.py CONFIG [options]."""

import argparse
import os

if __name__ == '__main__':  # re-run under the checkout's .venv when this Python lacks the install
    import use_venv  # noqa: F401

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a mimlab model')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default ./work_dirs/<config name>)')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from PATH, or without PATH from the latest checkpoint in the work dir',
    )
    parser.add_argument('--amp', action='store_true', help='mixed precision: bf16 where supported, else fp16')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale the lr by total batch / base batch')
    parser.add_argument('--no-validate', action='store_true', help='skip validation during training')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value ...')
    parser.add_argument(
        '--vis-backend',
        action='append',
        choices=['tensorboard', 'wandb', 'mlflow'],
        help='also log to this tracker (repeatable); needs its package: pip install -e ".[trackers]"',
    )
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = parser.parse_args(argv)
    # torch.distributed.launch passes --local-rank instead of setting the variable mmengine reads
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    from mimlab.engine.config_checks import check_run_files, fail_once
    from mimlab.engine.config_paths import resolve_config_path
    from mimlab.engine.launch import build_runner, merge_train_args
    from mimlab.utils import finish_dist

    with fail_once():  # the same error on every rank: printed once
        args.config = resolve_config_path(args.config)
        cfg = merge_train_args(Config.fromfile(args.config), args)
        check_run_files(cfg)
    runner = build_runner(cfg)
    try:
        runner.train()
    except SystemExit:  # PreemptionHook: every rank saved and met at a barrier; leave cleanly
        finish_dist(wait=False)
        raise
    finish_dist()


if __name__ == '__main__':
    main()
