"""Training curves and iteration times from mmengine's JSON scalar logs.

Examples::

    python tools/analysis_tools/analyze_logs.py plot_curve work_dirs/mae/20240101_120000/vis_data/scalars.json \\
        --keys loss lr --out loss.png
    python tools/analysis_tools/analyze_logs.py cal_train_time work_dirs/mae

A log is a ``scalars.json`` (or ``<timestamp>.json``) file, a run directory holding ``vis_data/``, or a work
directory (its newest run). The work is done by :mod:`mimlab.analysis.log_analysis`.
"""

import argparse
import re


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='task', required=True)

    plot = sub.add_parser('plot_curve', help='plot logged values against iterations or epochs')
    plot.add_argument('json_logs', nargs='+', help='JSON logs, run directories or work directories')
    plot.add_argument('--keys', nargs='+', default=['loss'], help='logged keys to plot (default: loss)')
    plot.add_argument('--legend', nargs='+', help="one label per (log, key) curve (default: '<run> <key>')")
    plot.add_argument('--title', help='figure title')
    plot.add_argument('--style', help='matplotlib style, e.g. ggplot or seaborn-v0_8-whitegrid (default: plain)')
    plot.add_argument('--out', default='curve.png', help='image to write (default: curve.png)')
    plot.add_argument('--x-axis', choices=('iter', 'epoch'), default='iter', help='x axis (default: iter)')
    plot.add_argument('--window', type=int, default=1, help='smooth with a mean over the last N logged values')
    plot.add_argument('--window-size', default='12*7', help='figure size in inches, "W*H" (default: 12*7)')

    time = sub.add_parser('cal_train_time', help='average / slowest / fastest iteration time and its std')
    time.add_argument('json_logs', nargs='+', help='JSON logs, run directories or work directories')
    time.add_argument('--include-outliers', action='store_true', help='also count the first logged time of each epoch')
    args = parser.parse_args(argv)
    if args.task == 'plot_curve':
        if not re.fullmatch(r'\d+(\.\d*)?\*\d+(\.\d*)?', args.window_size):
            parser.error(f'--window-size must be "W*H", e.g. 12*7, got {args.window_size!r}')
        if args.window < 1:
            parser.error(f'--window must be >= 1, got {args.window}')
    return args


def main(argv=None):
    args = parse_args(argv)
    from mimlab.analysis.log_analysis import (
        LogFormatError,
        format_train_time,
        load_json_log,
        plot_curves,
        train_time_stats,
    )

    try:
        logs = [load_json_log(path) for path in args.json_logs]
        if args.task == 'cal_train_time':
            results = []
            for log in logs:
                stats = train_time_stats(log, args.include_outliers)
                print(format_train_time(log['path'], stats, args.include_outliers))
                results.append(stats)
            return results
        w, h = (float(v) for v in args.window_size.split('*'))
        out = plot_curves(
            logs,
            args.keys,
            args.out,
            legend=args.legend,
            title=args.title,
            style=args.style,
            x_axis=args.x_axis,
            window=args.window,
            figsize=(w, h),
        )
        print(f'saved the curves to {out}')
        return out
    except (LogFormatError, FileNotFoundError, ValueError) as e:
        raise SystemExit(f'analyze_logs.py: error: {e}') from e


if __name__ == '__main__':
    main()
