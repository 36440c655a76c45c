"""Input-pipeline benchmark: images/s per worker core of a config's train pipeline on real JPEG files.

Example: ``python tools/analysis_tools/benchmark_data.py configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py
--make-jpegs /tmp/jpegs --num 512 --size 500x375 --quality 90 --workers 1 --reference mmpretrain``.
``--make-jpegs DIR`` writes ``--num`` JPEGs rendered from the built-in dataset into DIR (or reuses the ones there);
without it, ``--files DIR`` names a folder of existing JPEGs. The pipeline's first transform must read
``img_path`` (``LoadImageFromFile`` or a fused loader). Each sample carries a ``gt_label``, as ImageNet samples do
(``--no-labels``: without), and each pipeline's batches are collated with its config's ``collate_fn`` (mmpretrain:
mmengine's ``default_collate``, as its configs use); ``--shards DIR`` writes the same JPEGs into WebDataset shards
and times the config's pipeline on files and on shards in alternating rounds; the numbers come from
:func:`mimlab.analysis.pipeline_timing.benchmark_pipelines`, mmpretrain's pipeline from ``mmpretrain_reference.py``
next to this file.
"""

import argparse
import glob
import json
import os.path as osp
import sys

from mmengine.config import Config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file (its train_dataloader.dataset.pipeline is measured)')
    parser.add_argument('--workers', type=int, default=0, help='DataLoader workers (0: in this process)')
    parser.add_argument('--make-jpegs', metavar='DIR', help='write JPEGs from the built-in dataset here')
    parser.add_argument('--files', metavar='DIR', help='existing JPEGs to read instead')
    parser.add_argument('--num', type=int, default=256, help='images to write / read')
    parser.add_argument('--size', default='500x375', help='WxH of the written JPEGs')
    parser.add_argument('--quality', type=int, default=90, help='JPEG quality of the written files')
    parser.add_argument('--batch-size', type=int, default=32, help='collated batch size')
    parser.add_argument('--repeats', type=int, default=3, help='passes over the files; the median counts')
    parser.add_argument('--reference', choices=('mmpretrain',), help="also time mmpretrain 1.2.0's MAE pipeline")
    parser.add_argument(
        '--also', nargs='+', default=[], metavar='CONFIG', help='more configs, timed in the same rounds'
    )
    parser.add_argument(
        '--no-labels',
        action='store_true',
        help='samples without gt_label (by default each has one, as ImageNet samples do, and crosses with it)',
    )
    parser.add_argument(
        '--shards',
        metavar='DIR',
        help='also read the same JPEGs from WebDataset shards written into DIR (reused if there), timed in the same '
        'rounds as the files: images/s per core from files vs from shards (the config pipeline only)',
    )
    parser.add_argument('--samples-per-shard', type=int, default=64, help='shard size for --shards')
    parser.add_argument('--json', help='write the results to this file')
    return parser.parse_args(argv)


def _mmpretrain_reference():
    """``mmpretrain_reference.py`` next to this tool (mmpretrain is a test-time reference: no mimlab code holds it)."""
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    import mmpretrain_reference

    return mmpretrain_reference


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mimlab.analysis.pipeline_timing import benchmark_pipelines, make_jpegs
    from mimlab.apis import register_all_modules

    register_all_modules()
    if args.make_jpegs:
        w, h = (int(v) for v in args.size.lower().split('x'))
        existing = sorted(glob.glob(osp.join(args.make_jpegs, '*.jpg')))
        paths = (
            existing[: args.num]
            if len(existing) >= args.num
            else make_jpegs(args.make_jpegs, args.num, (w, h), args.quality)
        )
    elif args.files:
        paths = sorted(glob.glob(osp.join(args.files, '**', '*.jp*g'), recursive=True))[: args.num]
        if not paths:
            raise FileNotFoundError(f'--files {args.files}: no .jpg/.jpeg files under it')
    else:
        raise SystemExit('give --make-jpegs DIR or --files DIR')
    if args.shards:
        return _files_vs_shards(args, paths)
    pipelines, collates = {}, {}
    for name, path in [('mimlab', args.config)] + [(osp.splitext(osp.basename(p))[0], p) for p in args.also]:
        loader = Config.fromfile(path).train_dataloader
        pipelines[name] = loader.dataset.pipeline
        collates[name] = dict(loader.get('collate_fn', dict(type='mimlab.default_collate')))
    if args.reference == 'mmpretrain':
        reference = _mmpretrain_reference()
        reference.register_mmpretrain()
        pipelines['mmpretrain'] = reference.mmpretrain_pipeline()  # collated by default_collate, as its configs do
    measured = benchmark_pipelines(
        pipelines,
        paths,
        workers=args.workers,
        batch_size=args.batch_size,
        repeats=args.repeats,
        collates=collates,
        labels=not args.no_labels,
    )
    results = dict(num_images=len(paths), workers=args.workers, **measured)
    print(f'{len(paths)} files, {args.workers} workers')
    for name, r in measured.items():
        print(f'{r["images_per_s_per_core"]:8.1f} images/s per core  {name}')
    if args.reference == 'mmpretrain':
        results['speed_ratio'] = measured['mimlab']['images_per_s'] / measured['mmpretrain']['images_per_s']
        print(f'speed ratio {results["speed_ratio"]:.2f} (mimlab / mmpretrain 1.2.0)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return results


def _files_vs_shards(args, paths) -> dict:
    from mimlab.analysis.pipeline_timing import benchmark_files_vs_shards

    loader = Config.fromfile(args.config).train_dataloader
    measured = benchmark_files_vs_shards(
        loader.dataset.pipeline,
        paths,
        args.shards,
        workers=args.workers,
        batch_size=args.batch_size,
        repeats=args.repeats,
        collate=dict(loader.get('collate_fn', dict(type='mimlab.default_collate'))),
        samples_per_shard=args.samples_per_shard,
    )
    results = dict(num_images=len(paths), workers=args.workers, **measured)
    print(f'{len(paths)} JPEGs, {args.workers} workers')
    for name, r in measured.items():
        print(f'{r["images_per_s_per_core"]:8.1f} images/s per core  from {name}')
    results['shards_vs_files'] = measured['shards']['images_per_s'] / measured['files']['images_per_s']
    print(f'shards / files: {results["shards_vs_files"]:.2f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == '__main__':
    main()
