"""Keep only the ``backbone.*`` weights of a checkpoint, prefix removed: SRC DST.

The result loads into a plain backbone (or into downstream repos with ``prefix=''``).
"""

import argparse

import torch

from mimlab.utils.checkpoint import load_checkpoint_weights_only, state_dict_of


def extract_backbone(state: dict) -> dict:
    backbone = {k[len('backbone.') :]: v for k, v in state.items() if k.startswith('backbone.')}
    if not backbone:
        raise KeyError('no backbone.* keys in the checkpoint')
    return backbone


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('src')
    parser.add_argument('dst')
    args = parser.parse_args()
    backbone = extract_backbone(state_dict_of(load_checkpoint_weights_only(args.src), args.src))
    torch.save({'state_dict': backbone, 'meta': {'source': args.src}}, args.dst)
    print(f'wrote {len(backbone)} backbone tensors to {args.dst}')


if __name__ == '__main__':
    main()
