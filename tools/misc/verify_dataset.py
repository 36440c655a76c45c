"""List every unreadable image of a config's dataset: python tools/misc/verify_dataset.py CONFIG [--split S].

Decodes each file fully (a truncated JPEG is caught, not only a missing one), shows a progress bar, prints
``index<TAB>path<TAB>reason`` for each bad file and exits with status 1 if there is any.

Shards (``WebDataset``): a config whose dataset is a ``WebDataset`` is checked shard by shard, or give the shards
directly with ``--shards 'data/train-{000000..000146}.tar'`` (``--manifest``: its counts and SHA-256 are compared; by
default the ``manifest.json`` next to the shards, if any). Each problem is printed as ``shard<TAB>key<TAB>reason``
(key ``-`` for a problem of the whole shard: truncated, unreadable, wrong count or checksum).
"""

import argparse
import os.path as osp
import sys

from mmengine.config import DictAction


def _verify_shards(urls, manifest, workers) -> int:
    from mimlab.datasets.shards import MANIFEST, verify_shards

    if manifest is None:
        local = [u for u in urls if '://' not in u and not u.startswith('pipe:')]
        candidate = osp.join(osp.dirname(local[0]), MANIFEST) if local else ''
        manifest = candidate if candidate and osp.isfile(candidate) else None
    total, bad = verify_shards(urls, manifest, workers=workers)
    print()
    for shard, key, reason in bad:
        print(f'{shard}\t{key}\t{reason}')
    checked = f'{len(urls)} shards, {total} samples' + (f' (against {manifest})' if manifest else '')
    print(f'{len(bad)} problems in {checked}' if bad else f'all readable: {checked}')
    return 1 if bad else 0


def _verify_hf(dataset) -> int:
    """Decode the image of every row of a saved Hugging Face dataset (``HFDataset``)."""
    from mmengine.utils import ProgressBar

    from mimlab.datasets.hf import _image_bytes
    from mimlab.datasets.verify import check_image_bytes

    bad, bar = [], ProgressBar(len(dataset))
    for i in range(len(dataset)):
        where = f'{dataset.name} row {i}'
        try:
            reason = check_image_bytes(_image_bytes(dataset.data[i][dataset.image_key], where))
        except Exception as e:
            reason = f'{type(e).__name__}: {e}'
        if reason is not None:
            bad.append((i, where, reason))
        bar.update()
    print()
    for i, where, reason in bad:
        print(f'{i}\t{where}\t{reason}')
    n = len(dataset)
    print(f'{len(bad)} of {n} images unreadable' if bad else f'all {n} images readable')
    return 1 if bad else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train', help='which dataloader')
    parser.add_argument('--workers', type=int, default=1, help='decoding processes')
    parser.add_argument('--shards', nargs='+', help='shard files / brace patterns to check instead of a config')
    parser.add_argument('--manifest', help='manifest.json to check the shards against')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value ...')
    args = parser.parse_args(argv)

    from mimlab.datasets.shards import expand_shard_urls

    if args.shards:
        return _verify_shards(expand_shard_urls(args.shards), args.manifest, args.workers)
    if not args.config:
        parser.error('give a CONFIG or --shards')

    from mimlab.apis import load_tool_config
    from mimlab.datasets import HFDataset, WebDataset
    from mimlab.datasets.verify import verify_image_files
    from mimlab.registry import DATASETS

    cfg = load_tool_config(args.config, args.cfg_options, quiet=False)
    loader = cfg.get(f'{args.split}_dataloader')
    if not loader:
        parser.error(f'{args.config} has no {args.split}_dataloader')
    dataset_cfg = dict(loader['dataset'], pipeline=[])  # file list only; the check decodes by itself
    dataset = DATASETS.build(dataset_cfg)
    if isinstance(dataset, WebDataset):
        return _verify_shards(dataset.urls, args.manifest or dataset.manifest, args.workers)
    if isinstance(dataset, HFDataset):
        return _verify_hf(dataset)
    if not hasattr(dataset, 'get_data_info'):
        print(f'{type(dataset).__name__} has no image files to verify')
        return 0
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
