"""Convert a mimlab / mmpretrain / mmselfsup ViT checkpoint to timm's layout: SRC DST [--check].

Reads a full-algorithm (``backbone.*``) or backbone-only state dict, with or without the ``state_dict`` wrapper, and
writes ``{'model': state_dict}`` as timm, ViTDet and the official MAE code expect. ``--check`` builds the matching
timm ``VisionTransformer``, loads the result with ``strict=True`` and compares features with mimlab's model.
"""

import argparse

import torch

from mimlab.converters.vit import split_checkpoint, timm_vit_kwargs, vit_to_timm
from mimlab.utils import load_checkpoint_weights_only


def check(backbone: dict, timm_state: dict) -> float:
    """Max |difference| of the token features of mimlab's and timm's models on a random input."""
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    from mimlab.models.backbones.vit import VisionTransformer

    kwargs = timm_vit_kwargs(timm_state)
    ref = TimmViT(**kwargs).eval()
    ref.load_state_dict(timm_state, strict=True)
    arch = dict(
        embed_dims=kwargs['embed_dim'],
        num_layers=kwargs['depth'],
        num_heads=kwargs['num_heads'],
        feedforward_channels=int(kwargs['mlp_ratio'] * kwargs['embed_dim']),
    )
    ours = VisionTransformer(
        arch=arch,
        img_size=kwargs['img_size'],
        patch_size=kwargs['patch_size'],
        out_type='avg_featmap' if kwargs['fc_norm'] else 'raw',
        final_norm=kwargs['final_norm'],
        pre_norm=kwargs['pre_norm'],
        layer_scale_init_value=1.0 if kwargs['init_values'] else 0.0,
    ).eval()
    ours.load_state_dict(backbone, strict=True)
    x = torch.randn(2, 3, kwargs['img_size'], kwargs['img_size'])
    with torch.no_grad():
        ours.out_type = 'raw'
        return (ours(x)[0] - ref.forward_features(x)).abs().max().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument('--check', action='store_true', help='load into timm strictly and compare features')
    args = parser.parse_args()
    backbone, head = split_checkpoint(load_checkpoint_weights_only(args.src))
    timm_state = vit_to_timm(backbone, head)
    torch.save({'model': timm_state}, args.dst)
    print(f'wrote {len(timm_state)} tensors to {args.dst}')
    if args.check:
        diff = check(backbone, timm_state)
        print(f'timm strict load ok; max |feature difference| = {diff:.3g}')
        if diff > 1e-4:
            raise SystemExit(f'features differ by {diff:.3g} > 1e-4')


if __name__ == '__main__':
    main()
