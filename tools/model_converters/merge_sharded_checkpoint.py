"""Merge a sharded (FSDP2) checkpoint into one ordinary .pth: SRC DST [--weights-only].

SRC is the ``iter_N.pth`` / ``epoch_N.pth`` of a sharded run; its weights and optimizer state are in the folder
``SRC.dcp`` next to it (each rank's shards). DST gets the full ``state_dict`` with the usual keys (``backbone.*``,
``neck.*``, ``head.*``), the optimizer state numbered as ``torch.optim`` saves it, the lr schedulers and the meta,
so ``mmcls2timm.py``, ``extract_backbone_weights.py``, OpenMMLab downstream repos and a DDP ``--resume`` read it
like any mimlab checkpoint. Runs in one process; no GPU or process group needed.
"""

import argparse

from mimlab.engine.parallel import merge_sharded_checkpoint


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='the .pth of a sharded checkpoint (its shards in SRC.dcp/)')
    parser.add_argument('dst', help='the single .pth to write')
    parser.add_argument('--weights-only', action='store_true', help='leave the optimizer state out')
    args = parser.parse_args(argv)
    merged = merge_sharded_checkpoint(args.src, args.dst, with_optimizer=not args.weights_only)
    print(f'wrote {len(merged["state_dict"])} tensors to {args.dst}')


if __name__ == '__main__':
    main()
