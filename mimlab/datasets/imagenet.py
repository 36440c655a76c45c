"""Image-folder and annotation-file datasets in the layouts mmpretrain users already have.

- class-per-folder: ``{data_root}/{data_prefix}/{class}/{image}``; classes are the sorted folder names.
- annotation file: ``{data_root}/{ann_file}`` with lines ``relative/path.JPEG label`` (or only the path when
  ``with_label=False``), paths relative to ``{data_root}/{data_prefix}``.
"""

import os
import os.path as osp
from collections.abc import Sequence

from mmengine.dataset import BaseDataset

from mimlab.registry import DATASETS

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


@DATASETS.register_module()
class CustomDataset(BaseDataset):
    """A labelled (or unlabelled) image collection read from folders or an annotation file.

    Args:
        data_root: Root folder.
        data_prefix: Image folder relative to ``data_root`` (or absolute).
        ann_file: Annotation file relative to ``data_root``; empty = scan the class folders.
        with_label: Read labels (annotation files) / class folders (folder scan); False = unlabelled images.
        extensions: Image file suffixes accepted by the folder scan (case-insensitive).
        metainfo: e.g. ``dict(classes=(...))`` to name classes of an annotation file.
        pipeline: Transforms applied to each sample.
        test_mode: mmengine test mode (no re-fetch of failing samples).
        lazy_init: Defer reading the file list until first use.
    """

    def __init__(
        self,
        data_root: str = '',
        data_prefix: str | dict = '',
        ann_file: str = '',
        with_label: bool = True,
        extensions: Sequence[str] = IMG_EXTENSIONS,
        metainfo: dict | None = None,
        pipeline: Sequence = (),
        test_mode: bool = False,
        lazy_init: bool = False,
        **kwargs,
    ):
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        self.with_label = with_label
        self.extensions = tuple(e.lower() for e in extensions)
        self._cfg_paths = dict(data_root=data_root, data_prefix=data_prefix.get('img_path', ''), ann_file=ann_file)
        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=data_prefix,
            pipeline=list(pipeline),
            test_mode=test_mode,
            lazy_init=lazy_init,
            **kwargs,
        )

    def _where(self) -> str:
        return ', '.join(f'{k}={v!r}' for k, v in self._cfg_paths.items() if v)

    def load_data_list(self) -> list[dict]:
        img_dir = self.data_prefix['img_path']
        if self.data_root and not osp.isdir(self.data_root):
            raise FileNotFoundError(f'{type(self).__name__}: data_root {self.data_root!r} does not exist')
        if not osp.isdir(img_dir):
            raise FileNotFoundError(f'{type(self).__name__}: image folder {img_dir!r} does not exist ({self._where()})')
        if self.ann_file:
            return self._from_ann_file(img_dir)
        return self._from_folders(img_dir)

    def _from_ann_file(self, img_dir: str) -> list[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'{type(self).__name__}: ann_file {self.ann_file!r} does not exist ({self._where()})'
            )
        data = []
        with open(self.ann_file) as f:
            for lineno, line in enumerate(f, 1):
                parts = line.strip().rsplit(' ', 1) if self.with_label else [line.strip()]
                if not parts[0]:
                    continue
                info = dict(img_path=osp.join(img_dir, parts[0]))
                if self.with_label:
                    if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                        raise ValueError(
                            f'{self.ann_file}:{lineno}: expected "<path> <int label>", got {line.strip()!r}'
                        )
                    info['gt_label'] = int(parts[1])
                data.append(info)
        if not data:
            raise ValueError(f'{type(self).__name__}: ann_file {self.ann_file!r} lists no images')
        return data

    def _from_folders(self, img_dir: str) -> list[dict]:
        def images(folder):
            for dirpath, _, files in sorted(os.walk(folder, followlinks=True)):
                for name in sorted(files):
                    if name.lower().endswith(self.extensions):
                        yield osp.join(dirpath, name)

        if not self.with_label:
            data = [dict(img_path=p) for p in images(img_dir)]
        else:
            classes = sorted(d.name for d in os.scandir(img_dir) if d.is_dir())
            if not classes:
                raise ValueError(f'{type(self).__name__}: no class folders in {img_dir!r} ({self._where()})')
            if self._metainfo.get('classes') is None:
                self._metainfo['classes'] = tuple(classes)
            data = [
                dict(img_path=p, gt_label=label)
                for label, cls in enumerate(classes)
                for p in images(osp.join(img_dir, cls))
            ]
        if not data:
            raise ValueError(f'{type(self).__name__}: no images with suffix {self.extensions} under {img_dir!r}')
        return data

    def prepare_data(self, idx: int):
        try:
            return super().prepare_data(idx)
        except Exception as e:  # noqa: BLE001 - re-raised naming the sample
            path = self.get_data_info(idx).get('img_path', '?')
            raise RuntimeError(f'{type(self).__name__}[{idx}] {path}: {type(e).__name__}: {e}') from e


@DATASETS.register_module()
class ImageNet(CustomDataset):
    """ImageNet in mmpretrain's layout: ``split`` picks ``{split}/`` and ``meta/{split}.txt`` when it exists.

    Args:
        data_root: e.g. 'data/imagenet'.
        split: 'train', 'val' or 'test' ('test' is unlabelled); empty to use data_prefix/ann_file directly.
    """

    def __init__(self, data_root: str = '', split: str = '', data_prefix: str = '', ann_file: str = '', **kwargs):
        if split:
            if split not in ('train', 'val', 'test'):
                raise ValueError(f'ImageNet split must be "train", "val" or "test", got {split!r}')
            data_prefix = data_prefix or split
            if not ann_file and osp.isfile(osp.join(data_root, 'meta', f'{split}.txt')):
                ann_file = f'meta/{split}.txt'
            if split == 'test':
                kwargs.setdefault('with_label', False)
        super().__init__(data_root=data_root, data_prefix=data_prefix, ann_file=ann_file, **kwargs)
