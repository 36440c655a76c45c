"""Write WebDataset tar shards from an ImageNet-style folder or an annotation file.

Examples::

    # data/imagenet/train/{class}/*.JPEG (or data/imagenet/meta/train.txt when it exists)
    python tools/dataset_converters/images_to_shards.py data/imagenet data/imagenet-shards --split train --workers 8
    # any annotation file of "relative/path label" lines
    python tools/dataset_converters/images_to_shards.py data/mine out/ --data-prefix images --ann-file meta/all.txt

Each sample becomes ``{index:09d}.{jpg,png,...}`` (the file's bytes, not re-encoded) and ``{index:09d}.cls`` (its
label). The samples are mixed (``--shuffle-seed``) before they are cut into shards of ``--samples-per-shard``, so each
shard holds many classes. ``{out}/manifest.json`` lists every shard's samples, bytes and SHA-256;
:class:`mimlab.datasets.WebDataset` reads its sample counts, ``tools/misc/verify_dataset.py --shards`` its checksums.
"""

import argparse
import sys


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('data_root', help='dataset root (the ImageNet layout: {split}/{class}/..., meta/{split}.txt)')
    parser.add_argument('out_dir', help='folder for the shards and manifest.json')
    parser.add_argument('--split', default='train', help="ImageNet split folder (default 'train'); '' to use the next")
    parser.add_argument('--data-prefix', default='', help='image folder relative to data_root (instead of --split)')
    parser.add_argument('--ann-file', default='', help='annotation file relative to data_root ("path label" lines)')
    parser.add_argument('--no-labels', action='store_true', help='images only (no .cls members)')
    parser.add_argument('--prefix', default=None, help='shard file prefix (default: the split, or "data")')
    parser.add_argument('--samples-per-shard', type=int, default=1000, help='samples per shard (the last: the rest)')
    parser.add_argument('--shuffle-seed', type=int, default=0, help='seed that mixes the samples; -1: keep the order')
    parser.add_argument('--workers', type=int, default=1, help='shards written in parallel')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mimlab.datasets import ImageNet
    from mimlab.datasets.shards import samples_from_files, write_shards

    split = '' if (args.data_prefix or args.ann_file) else args.split
    dataset = ImageNet(
        data_root=args.data_root,
        split=split,
        data_prefix=args.data_prefix,
        ann_file=args.ann_file,
        with_label=not args.no_labels,
        lazy_init=True,
    )
    dataset.full_init()
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    samples = samples_from_files(infos, None if args.shuffle_seed < 0 else args.shuffle_seed)
    manifest = write_shards(
        samples,
        args.out_dir,
        prefix=args.prefix or split or 'data',
        samples_per_shard=args.samples_per_shard,
        workers=args.workers,
    )
    print(
        f'\n{manifest["num_shards"]} shards, {manifest["samples"]} samples, {manifest["bytes"] / 2**20:.1f} MiB: '
        f'{args.out_dir}/{manifest["pattern"]} (manifest.json)'
    )
    return manifest


if __name__ == '__main__':
    main()
    sys.exit(0)
