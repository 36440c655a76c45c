"""Print a config fully merged: its ``_base_`` files and ``--cfg-options`` applied, as mmengine reads it.

Example: ``python tools/misc/print_config.py configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py
--cfg-options train_cfg.max_epochs=1 model.backbone.mask_ratio=0.6``.
"""

import argparse

from mmengine.config import Config, DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value ...')
    return parser.parse_args(argv)


def main(argv=None) -> Config:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    print(cfg.pretty_text)  # a valid config file: redirect it to keep the merged config
    return cfg


if __name__ == '__main__':
    main()
