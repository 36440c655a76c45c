"""Picture what a MIM model reconstructs from a masked image (MAE, PixMIM, SimMIM, A2MIM, MixMIM).

Example: ``python tools/analysis_tools/visualize_reconstruction.py
configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py --checkpoint mae_vit-base.pth --img-path a.jpg b.jpg
--out-file recon.png``

One row per image; columns ``original``, ``target`` (when a target generator changes it, e.g. PixMIM), ``masked``
(what the encoder got), ``reconstruction`` and ``reconstruction + visible``. Each image is resized (short edge,
bicubic) and centre-cropped to the size the config trains at; the train pipeline's mask generator (SimMIM, A2MIM)
draws the masks, or the model draws them (MAE, MixMIM: image b is mixed with image N-1-b, a single image with
itself). ``--seed`` makes the masks repeatable. Per-patch normalised predictions (``norm_pix``) are put back on the
image's scale with the target's patch statistics. mmpretrain's and mmselfsup's MAE, SimMIM and MixMIM checkpoints
load as they are.
"""

import argparse
import os.path as osp
import sys

from mmengine.config import Config, DictAction


def parse_args(argv=None) -> argparse.Namespace:
    from mimlab.utils.checkpoint import add_trusted_argument

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='pretraining config file')
    parser.add_argument('--checkpoint', help='checkpoint file (without one: freshly initialised weights)')
    parser.add_argument('--img-path', nargs='+', required=True, help='image file(s), one grid row each')
    parser.add_argument('--out-file', required=True, help='output image (.png, .jpg)')
    parser.add_argument(
        '--use-vis-pipeline',
        action='store_true',
        help="use the config's vis_pipeline (mmselfsup's convention) instead of resize + centre crop + the train "
        "pipeline's mask generator",
    )
    parser.add_argument(
        '--norm-pix',
        action='store_true',
        help="accepted for mmselfsup commands: always applied when the model's head uses norm_pix",
    )
    parser.add_argument(
        '--target-generator',
        action='store_true',
        help='accepted for mmselfsup commands: the target column appears whenever a target generator changes the image',
    )
    parser.add_argument('--device', help='cuda or cpu (default: cuda when available)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the masks')
    parser.add_argument('--min-tile', type=int, default=128, help='enlarge small images to at least this width')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value ...')
    add_trusted_argument(parser)
    return parser.parse_args(argv)


def vis_pipeline(cfg: Config, size: tuple[int, int]) -> list[dict]:
    """Load, resize the short edge, centre-crop to ``size`` (H, W), the train pipeline's mask generators, pack."""
    if cfg.get('vis_pipeline'):
        return [dict(t) for t in cfg.vis_pipeline]
    train = ((cfg.get('train_dataloader') or {}).get('dataset') or {}).get('pipeline') or []
    masks = [dict(t) for t in train if str(t.get('type', '')).endswith('MaskGenerator')]
    h, w = size
    return [
        dict(type='LoadImageFromFile'),
        dict(type='ResizeEdge', scale=min(h, w), edge='short', interpolation='bicubic'),
        dict(type='CenterCrop', crop_size=(w, h)),  # mmcv's (w, h)
        *masks,
        dict(type='PackInputs'),
    ]


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch
    from mmengine.dataset import Compose

    from mimlab.apis import build_model_without_pretrained, load_tool_config, train_image_size
    from mimlab.datasets import default_collate
    from mimlab.utils.checkpoint import load_checkpoint, state_dict_of
    from mimlab.visualization import isolated_rng, reconstruct_batch, reconstruction_grid, save_image

    for path in args.img_path:
        if not osp.isfile(path):
            sys.exit(f'error: image {path} does not exist')
    cfg = load_tool_config(args.config, args.cfg_options)
    model = build_model_without_pretrained(cfg)
    if not hasattr(type(model), 'reconstruct'):
        sys.exit(
            f'error: {args.config} builds a {type(model).__name__}, which has no reconstruct(): give a MIM '
            'pretraining config (MAE, PixMIM, SimMIM, A2MIM, MixMIM)'
        )
    if args.checkpoint:
        state = state_dict_of(load_checkpoint(args.checkpoint, trusted=args.trusted), args.checkpoint)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            sys.exit(f'error: {args.checkpoint} does not fit {type(model).__name__}: {e}')
    else:
        print('no --checkpoint: the model has freshly initialised weights', file=sys.stderr)
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    model.to(device)

    pipeline = Compose(vis_pipeline(cfg, train_image_size(cfg, model)))
    with isolated_rng(args.seed):
        samples = []
        for path in args.img_path:
            try:
                samples.append(pipeline(dict(img_path=path)))
            except Exception as e:  # noqa: BLE001 - re-raised naming the image
                sys.exit(f'error: cannot prepare {path}: {e}')
        inputs, outputs = reconstruct_batch(model, default_collate(samples), seed=None)
    pre = model.data_preprocessor
    grid = reconstruction_grid(inputs, outputs, pre.mean, pre.std, min_tile=args.min_tile)
    save_image(grid, args.out_file)
    print(f'reconstructions of {len(samples)} image(s) written to {args.out_file}')


if __name__ == '__main__':
    main()
