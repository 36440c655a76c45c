"""List every unreadable image of a config's dataset: python tools/misc/verify_dataset.py CONFIG [--split S].

Decodes each file fully (a truncated JPEG is caught, not only a missing one), shows a progress bar, prints
``index<TAB>path<TAB>reason`` for each bad file and exits with status 1 if there is any.
"""

import argparse
import sys

from mmengine.config import DictAction


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train', help='which dataloader')
    parser.add_argument('--workers', type=int, default=1, help='decoding processes')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value ...')
    args = parser.parse_args(argv)

    from mimlab.apis import load_tool_config
    from mimlab.datasets.verify import verify_image_files
    from mimlab.registry import DATASETS

    cfg = load_tool_config(args.config, args.cfg_options, quiet=False)
    loader = cfg.get(f'{args.split}_dataloader')
    if not loader:
        parser.error(f'{args.config} has no {args.split}_dataloader')
    dataset_cfg = dict(loader['dataset'], pipeline=[])  # file list only; the check decodes by itself
    dataset = DATASETS.build(dataset_cfg)
    paths = [dataset.get_data_info(i).get('img_path') for i in range(len(dataset))]
    if any(p is None for p in paths):
        print(f'{type(dataset).__name__} has no image files to verify (an in-memory dataset?)')
        return 0
    bad = verify_image_files(paths, workers=args.workers)
    print()
    for i, path, reason in bad:
        print(f'{i}\t{path}\t{reason}')
    print(f'{len(bad)} of {len(paths)} images unreadable' if bad else f'all {len(paths)} images readable')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
