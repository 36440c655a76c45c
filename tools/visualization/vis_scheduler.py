"""Plot a config's learning rate (or momentum, weight decay) at every iteration of its schedule, without training.

Example: ``python tools/visualization/vis_scheduler.py configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py
--dataset-size 1281167 --ngpus 8 --save-path mae_lr.png``

mmengine's schedulers are built and stepped as its Runner steps them, with ``epoch_length = len(train_dataloader)``
for ``convert_to_iter_based`` (ceil or floor of dataset size / (batch size x GPUs), by ``drop_last``). One curve per
distinct schedule: the configured value (``base_lr``, what the log calls base_lr) and the param groups' (layer decay,
``lr_mult``...). A table of first / peak / last value and the warmup length is printed. The work is done by
:mod:`mimlab.analysis.param_schedule`.
"""

import argparse
import os.path as osp
import re

from mmengine.config import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='training config file')
    parser.add_argument(
        '-p',
        '--param',
        '--parameter',
        dest='param',
        choices=('lr', 'momentum', 'weight_decay'),
        default='lr',
        help='what to plot (default: lr; momentum is SGD momentum or Adam beta1)',
    )
    parser.add_argument(
        '-d',
        '--dataset-size',
        type=int,
        help="training images (default: the length of the config's train dataset, if it can be built here)",
    )
    parser.add_argument('-n', '--ngpus', type=int, default=1, help='GPUs the run would use (default: 1)')
    parser.add_argument('--auto-scale-lr', action='store_true', help="as train.py's: lr x total batch / base batch")
    parser.add_argument('-s', '--save-path', help='image to write (default: <param>_schedule.png)')
    parser.add_argument('--title', help='figure title (default: the config name)')
    parser.add_argument('--style', help='matplotlib style, e.g. ggplot or whitegrid (default: plain with a grid)')
    parser.add_argument('--window-size', default='12*7', help='figure size in inches, "W*H" (default: 12*7)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value ...')
    args = parser.parse_args(argv)
    if not re.fullmatch(r'\d+(\.\d*)?\*\d+(\.\d*)?', args.window_size):
        parser.error(f'--window-size must be "W*H", e.g. 12*7, got {args.window_size!r}')
    if args.ngpus < 1:
        parser.error(f'--ngpus must be >= 1, got {args.ngpus}')
    if args.dataset_size is not None and args.dataset_size < 1:
        parser.error(f'--dataset-size must be >= 1, got {args.dataset_size}')
    return args


def main(argv=None):
    args = parse_args(argv)
    from mimlab.analysis.param_schedule import format_schedule, param_schedule, plot_schedule
    from mimlab.apis import load_tool_config

    # quiet: no per-parameter init or paramwise messages when the model is built
    cfg = load_tool_config(args.config, args.cfg_options)
    if args.auto_scale_lr:
        cfg.auto_scale_lr = dict(cfg.get('auto_scale_lr') or {}, enable=True)
    name = osp.basename(args.config)
    try:
        schedule = param_schedule(cfg, args.dataset_size, args.ngpus, args.param)
        print(format_schedule(schedule, name))
        w, h = (float(v) for v in args.window_size.split('*'))
        out = plot_schedule(
            schedule,
            args.save_path or f'{args.param}_schedule.png',
            title=args.title or f'{name} ({args.ngpus} GPU{"s" * (args.ngpus > 1)})',
            style=args.style,
            figsize=(w, h),
        )
    except ValueError as e:
        raise SystemExit(f'vis_scheduler.py: error: {e}') from e
    print(f'saved the {args.param} schedule to {out}')
    return schedule


if __name__ == '__main__':
    main()
