"""Pictures of what a config's data pipeline hands the model: the first N samples of a phase, after PackInputs.

Example: ``python tools/visualization/browse_dataset.py
configs/demo/a2mim_resnet-test-l3_1xb64-coslr-10e_builtin-64px.py --num 8 --mode pipeline --output-dir vis``

One row per sample (index and class on the left); columns ``original`` (``--mode pipeline``: the image as loaded),
``transformed`` (the packed uint8 input, in RGB) and ``masked`` (pipelines with a mask generator, SimMIM and A2MIM:
masked cells darkened). Grids of up to 16 rows are written to ``OUTPUT_DIR/<phase>_<first>-<last>.png``. ``--seed``
makes the random crops, flips and masks repeatable. The work is done by :mod:`mimlab.analysis.browse` (the samples)
and :mod:`mimlab.visualization.browse` (the grids).
"""

import argparse
import os
import os.path as osp

from mmengine.config import DictAction

ROWS_PER_IMAGE = 16


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    parser.add_argument('-p', '--phase', choices=('train', 'val', 'test'), default='train', help='default: train')
    parser.add_argument(
        '-n', '--num', '--show-number', dest='num', type=int, default=8, help='samples, from index 0 (default: 8)'
    )
    parser.add_argument('--seed', type=int, default=0, help='seed of the random transforms (default: 0)')
    parser.add_argument(
        '-o',
        '--output-dir',
        default='work_dirs/browse_dataset',
        help='folder for the grids (default: work_dirs/browse_dataset)',
    )
    parser.add_argument(
        '-m',
        '--mode',
        choices=('transformed', 'pipeline', 'concat'),
        default='transformed',
        help="transformed: the packed input (and its mask); pipeline: the image as loaded next to it ('concat' is "
        "accepted for mmpretrain's name of the same view)",
    )
    parser.add_argument('--min-tile', type=int, default=128, help='enlarge small images to at least this width')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value ...')
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f'--num must be >= 1, got {args.num}')
    return args


def main(argv=None) -> list[str]:
    args = parse_args(argv)
    from mimlab.analysis.browse import browse_samples
    from mimlab.apis import load_tool_config
    from mimlab.visualization import browse_grid, save_image

    cfg = load_tool_config(args.config, args.cfg_options)
    try:
        samples = browse_samples(cfg, args.phase, args.num, args.seed, original=args.mode != 'transformed')
    except ValueError as e:
        raise SystemExit(f'browse_dataset.py: error: {e}') from e
    os.makedirs(args.output_dir, exist_ok=True)
    written = []
    for start in range(0, len(samples), ROWS_PER_IMAGE):
        page = samples[start : start + ROWS_PER_IMAGE]
        path = osp.join(args.output_dir, f'{args.phase}_{page[0]["index"]}-{page[-1]["index"]}.png')
        save_image(browse_grid(page, min_tile=args.min_tile), path)
        written.append(path)
    print(f'{len(samples)} {args.phase} sample(s) of {osp.basename(args.config)} written to {", ".join(written)}')
    return written


if __name__ == '__main__':
    main()
