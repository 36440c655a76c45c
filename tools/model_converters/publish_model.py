"""Strip a training checkpoint for release and name it by its hash: SRC DST -> DST-stem-<sha256[:8]>.pth.

Keeps ``meta`` and ``state_dict`` (and ``ema_state_dict`` values written back with ``--use-ema``); drops the
optimizer, schedulers and message hub.
"""

import argparse
import hashlib
import os

import torch

from mimlab.utils import atomic_write
from mimlab.utils.checkpoint import load_checkpoint_weights_only


def publish(src: str, dst: str, use_ema: bool = False) -> str:
    ckpt = load_checkpoint_weights_only(src)
    state = dict(ckpt['state_dict'])
    if use_ema:
        ema = ckpt.get('ema_state_dict')
        if ema is None:
            raise KeyError(f'{src} has no ema_state_dict')
        # mmengine's EMA wrapper stores 'module.<name>' plus 'steps'
        state.update({k[len('module.') :]: v for k, v in ema.items() if k.startswith('module.')})
    import io

    buffer = io.BytesIO()
    torch.save({'meta': ckpt.get('meta', {}), 'state_dict': state}, buffer)
    data = buffer.getvalue()
    stem = dst[:-4] if dst.endswith('.pth') else dst
    out = f'{stem}-{hashlib.sha256(data).hexdigest()[:8]}.pth'
    atomic_write(data, out)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument('--use-ema', action='store_true', help='publish the EMA weights')
    args = parser.parse_args()
    out = publish(args.src, args.dst, args.use_ema)
    print(f'published {out} ({os.path.getsize(out) / 2**20:.1f} MiB)')


if __name__ == '__main__':
    main()
