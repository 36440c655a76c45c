"""Parameters and FLOPs per image of a config's model, for the forward it really runs.

Example: ``python tools/analysis_tools/get_flops.py configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py``.
A pretraining algorithm is counted on its training forward (``mode='loss'``, masking included), a classifier on its
inference forward (``mode='predict'``); both also get the training step (forward + backward). FLOPs = 2 x MACs:
mmcv's / fvcore's get_flops print MACs as "FLOPs". The numbers come from
:func:`mimlab.analysis.complexity.model_complexity`; ``--json`` also writes them to a file.
"""

import argparse
import json

from mmengine.config import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        metavar=('H', 'W'),
        help='input size H [W]; the model is built for it (default: the size the config trains at)',
    )
    parser.add_argument('--batch-size', type=int, default=2, help='images per counted batch (results are per image)')
    parser.add_argument('--json', help='write the results to this file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value ...')
    args = parser.parse_args(argv)
    if args.shape is not None and len(args.shape) not in (1, 2):
        parser.error(f'--shape takes H or H W, got {len(args.shape)} numbers')
    if args.batch_size < 2:
        parser.error('--batch-size must be at least 2')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mimlab.analysis.complexity import format_complexity, model_complexity
    from mimlab.apis import load_tool_config

    cfg = load_tool_config(args.config, args.cfg_options)
    shape = None if args.shape is None else (args.shape[0], args.shape[-1])
    try:
        result = model_complexity(cfg, shape, args.batch_size)
    except ValueError as e:  # e.g. a --shape the model or its mask generator cannot take
        raise SystemExit(f'get_flops.py: error: {e}') from e
    print(format_complexity(result))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
