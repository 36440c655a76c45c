"""List the model zoo: names matching a pattern, or the markdown tables of docs/model_zoo.md.

python tools/misc/list_models.py '*pixmim*'
python tools/misc/list_models.py --task null            # pretraining checkpoints
python tools/misc/list_models.py --markdown > tables.md  # the tables of docs/model_zoo.md
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

from mimlab.apis.model_zoo import default_hub  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('pattern', nargs='?', help="fnmatch pattern on the model name, e.g. '*simmim*'")
    parser.add_argument('--task', help="'Image Classification', or 'null' for pretraining checkpoints")
    parser.add_argument('--markdown', action='store_true', help='print the zoo as markdown tables')
    args = parser.parse_args()
    hub = default_hub()
    if args.markdown:
        print(hub.to_markdown(), end='')
        return
    for name in hub.list_models(args.pattern, args.task):
        info = hub.get(name)
        print(f'{name}\t{"weights" if info.weights else "-"}')


if __name__ == '__main__':
    main()
