"""Convert a mimlab / mmpretrain / mmselfsup checkpoint to timm's layout: SRC DST [--check].

Handles ViT (LayerScale, the average-pool + fc_norm variant, classification heads), Swin, ResNet, ConvNeXt and
MixMIM (the families of ``mimlab.converters.auto.FAMILIES``), telling the family from the keys. Reads a full-algorithm
(``backbone.*``) or backbone-only state dict, with or without the ``state_dict`` wrapper, leaves necks, decoders and
pretraining-only parameters (``mask_token``) behind, and writes ``{'model': state_dict}`` as timm, ViTDet and the
official MAE code expect. ``--check`` builds the matching timm model from the weights, loads the result with
``strict=True`` and compares its features with mimlab's model on a random input. timm has no MixMIM model: a MixMIM
encoder is written in the official MixMIM layout (timm building blocks, ``models_mixmim_ft.py``), and ``--check``
verifies that the export converts back to the same features.
"""

import argparse

import torch

from mimlab.converters.auto import check_against_timm, to_timm
from mimlab.utils.checkpoint import add_trusted_argument, load_checkpoint


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument('--check', action='store_true', help='load into timm strictly and compare features')
    add_trusted_argument(parser)
    args = parser.parse_args()
    family, timm_state, backbone = to_timm(load_checkpoint(args.src, trusted=args.trusted))
    torch.save({'model': timm_state}, args.dst)
    print(f'{family}: wrote {len(timm_state)} tensors to {args.dst}')
    if args.check:
        diff = check_against_timm(family, backbone, timm_state)
        print(f'timm strict load ok; max |feature difference| = {diff:.3g}')
        if diff > 1e-4:
            raise SystemExit(f'features differ by {diff:.3g} > 1e-4')


if __name__ == '__main__':
    main()
