"""Import official MAE / Swin / SimMIM / MixMIM, openmixup A2MIM / SimMIM / classifier or timm weights into
mimlab's layout:
SRC DST [--source S] [--check CONFIG].

The source layout is read from the keys unless ``--source`` names it ('timm', 'official-mae', 'official-swin',
'official-simmim', 'official-mixmim', 'openmixup-a2mim' for openmixup's A2MIM and SimMIM pretraining checkpoints,
'openmixup-cls' for its fine-tuned classifiers). Writes ``{'meta': ..., 'state_dict': ...}`` with
``backbone.`` / ``neck.`` / ``head.fc.`` keys, loadable with ``load_from``,
``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')`` or
``mimlab.apis.get_model(name, pretrained=DST)``. ``--check CONFIG`` builds the config's model and loads the result
strictly (every key present, every shape right), listing what does not fit.
"""

import argparse

import torch

from mimlab.converters.auto import import_checkpoint
from mimlab.utils.checkpoint import add_trusted_argument, load_checkpoint


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument(
        '--source',
        default='auto',
        choices=[
            'auto',
            'timm',
            'official-mae',
            'official-swin',
            'official-simmim',
            'official-mixmim',
            'openmixup-a2mim',
            'openmixup-cls',
        ],
    )
    parser.add_argument('--check', metavar='CONFIG', help='build this config and load the result strictly')
    add_trusted_argument(parser)
    args = parser.parse_args()
    source, state = import_checkpoint(load_checkpoint(args.src, trusted=args.trusted), args.source)
    torch.save({'meta': {'imported_from': args.src, 'source': source}, 'state_dict': state}, args.dst)
    print(f'{source}: wrote {len(state)} tensors to {args.dst}')
    if args.check:
        from mmengine.config import Config

        from mimlab.apis import register_all_modules
        from mimlab.registry import MODELS
        from mimlab.utils.checkpoint import load_model_weights

        register_all_modules()
        model = MODELS.build(Config.fromfile(args.check).model)
        load_model_weights(model, args.dst, strict=True)
        print(f'loads strictly into {type(model).__name__} of {args.check}')


if __name__ == '__main__':
    main()
