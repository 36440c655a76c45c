"""Write mimlab's built-in procedural dataset as an ImageNet-style tree: train/, val/ and meta/{train,val}.txt.

Example: ``python tools/misc/make_builtin_dataset.py data/builtin --num-train 2000 --num-val 500 --img-size 64``.
The tree then reads with ``dict(type='ImageNet', data_root='data/builtin', split='train')``.
"""

import argparse

from mimlab.datasets.builtin import write_builtin_dataset


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out_dir', help='output root')
    parser.add_argument('--num-train', type=int, default=2000, help='images in train/')
    parser.add_argument('--num-val', type=int, default=500, help='images in val/')
    parser.add_argument('--img-size', type=int, default=64, help='image side in pixels')
    parser.add_argument('--num-classes', type=int, default=10, help='2 to 20')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--format', choices=('png', 'jpg'), default='png', help='png is lossless')
    parser.add_argument('--quality', type=int, default=90, help='JPEG quality')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    counts = write_builtin_dataset(
        args.out_dir,
        num_train=args.num_train,
        num_val=args.num_val,
        img_size=args.img_size,
        num_classes=args.num_classes,
        seed=args.seed,
        fmt=args.format,
        quality=args.quality,
    )
    print(f'wrote {counts} images to {args.out_dir}')


if __name__ == '__main__':
    main()
