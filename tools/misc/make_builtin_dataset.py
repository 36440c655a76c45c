"""Write mimlab's built-in procedural dataset as an ImageNet-style folder tree (train/, val/, meta/)."""

import argparse

from mimlab.datasets.builtin import write_builtin_dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('out_dir')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=500)
    parser.add_argument('--img-size', type=int, default=64)
    parser.add_argument('--num-classes', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--format', choices=('png', 'jpg'), default='png')
    parser.add_argument('--quality', type=int, default=90, help='JPEG quality')
    args = parser.parse_args()
    counts = write_builtin_dataset(
        args.out_dir,
        args.num_train,
        args.num_val,
        args.img_size,
        args.num_classes,
        args.seed,
        args.format,
        args.quality,
    )
    print(f'wrote {counts} images to {args.out_dir}')


if __name__ == '__main__':
    main()
