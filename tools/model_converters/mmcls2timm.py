"""Convert a mimlab / mmpretrain / mmselfsup checkpoint to timm's layout: SRC DST [--check].

Handles ViT (LayerScale, the average-pool + fc_norm variant, classification heads), Swin, ResNet, ConvNeXt and
MixMIM (the families of ``mimlab.converters.auto.FAMILIES``), telling the family from the keys. Reads a full-algorithm
(``backbone.*``) or backbone-only state dict, with or without the ``state_dict`` wrapper, leaves necks, decoders and
pretraining-only parameters (``mask_token``) behind, and writes ``{'model': state_dict}`` as timm, ViTDet and the
official MAE code expect. ``--check`` builds the matching timm model from the weights, loads the result with
``strict=True`` and compares its features with mimlab's model on a random input. timm has no MixMIM model: a MixMIM
encoder is written in the official MixMIM layout (timm building blocks, ``models_mixmim_ft.py``), and ``--check``
verifies that the export converts back to the same features. A ViT's head count is not in its weights: ``--check``
reads it from ``--num-heads``, else from the config that mimlab / mmengine store in the checkpoint
(``meta.cfg``), else from the standard arch of that width and depth.
"""

import argparse

import torch
from mmengine.config import Config

from mimlab.converters.auto import check_against_timm, to_timm
from mimlab.utils.checkpoint import add_trusted_argument, load_checkpoint


def heads_from_meta(checkpoint: dict) -> int | None:
    """``model.backbone.arch``'s head count in the config text a mmengine checkpoint carries, if any."""
    text = (checkpoint.get('meta') or {}).get('cfg') if isinstance(checkpoint, dict) else None
    if not isinstance(text, str):
        return None
    try:
        arch = Config.fromstring(text, '.py').model.backbone.get('arch')
    except Exception:  # noqa: BLE001 - a config this tool cannot read: fall back to the arch table
        return None
    return arch.get('num_heads') if isinstance(arch, dict) else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument('--check', action='store_true', help='load into timm strictly and compare features')
    parser.add_argument('--num-heads', type=int, help="a ViT's number of attention heads, for --check")
    add_trusted_argument(parser)
    args = parser.parse_args()
    checkpoint = load_checkpoint(args.src, trusted=args.trusted)
    family, timm_state, backbone = to_timm(checkpoint)
    torch.save({'model': timm_state}, args.dst)
    print(f'{family}: wrote {len(timm_state)} tensors to {args.dst}')
    if args.check:
        try:
            diff = check_against_timm(family, backbone, timm_state, args.num_heads or heads_from_meta(checkpoint))
        except ValueError as e:
            raise SystemExit(f'--check: {e}') from None
        print(f'timm strict load ok; max |feature difference| = {diff:.3g}')
        if diff > 1e-4:
            raise SystemExit(f'features differ by {diff:.3g} > 1e-4')


if __name__ == '__main__':
    main()
