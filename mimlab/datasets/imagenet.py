"""Image-folder and annotation-file datasets in the layouts mmpretrain users already have.

- class-per-folder: ``{data_root}/{data_prefix}/{class}/.../{image}``; the classes are the sorted folder names and a
  label is the index of its folder.
- annotation file: ``{data_root}/{ann_file}`` with lines ``relative/path.JPEG label`` (only the path when
  ``with_label=False``), the paths relative to ``{data_root}/{data_prefix}``.

Files are listed in sorted order, so the sample order is the same on every machine and in every process.
"""

import logging
import os
import os.path as osp
from collections.abc import Sequence

import torch
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mimlab.registry import DATASETS

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


@DATASETS.register_module()
class CustomDataset(BaseDataset):
    """A labelled (or unlabelled) image collection read from class folders or an annotation file.

    ``data_list`` entries are ``dict(img_path=..., gt_label=int)`` (no ``gt_label`` when unlabelled); the pipeline
    usually starts with mmcv's ``LoadImageFromFile``.

    Args:
        data_root: Root folder; ``data_prefix`` and ``ann_file`` are relative to it unless absolute.
        data_prefix: Image folder (or ``dict(img_path=...)`` as mmengine writes it).
        ann_file: Annotation file; empty to scan the class folders instead.
        with_label: Read labels. False: annotation lines are bare paths, and the folder scan lists every image under
            ``data_prefix`` at any depth, without classes.
        extensions: Image file suffixes the folder scan accepts (case-insensitive).
        metainfo: e.g. ``dict(classes=(...))``. With a folder scan, classes that are the folder names (in any order)
            set the labels; other names must be as many as the folders and only rename them, as in mmpretrain.
        pipeline: Transforms applied to each sample.
        test_mode: mmengine test mode.
        skip_bad_images: A sample whose image cannot be read or decoded (missing, empty, truncated, not an image)
            is replaced by the next readable one, counted (:attr:`num_skipped_images`, shared by the DataLoader
            workers; ``SkippedImagesHook`` logs it) and reported in a warning naming the file. False (default): the
            error stops the run, naming the sample's index and file.
        lazy_init: List the files on first use instead of in the constructor.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments (``indices``, ``serialize_data``, ...).
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
        skip_bad_images: bool = False,
        lazy_init: bool = False,
        **kwargs,
    ):
        self.skip_bad_images = skip_bad_images
        # in shared memory before the DataLoader starts its workers, so their skips add up in one place
        self._skipped = torch.zeros(1, dtype=torch.int64).share_memory_()
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        self.with_label = with_label
        self.extensions = tuple(e.lower() for e in extensions)
        # The paths as configured, for error messages (mmengine joins them with data_root in place).
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
        return ', '.join(f'{k}={v!r}' for k, v in self._cfg_paths.items() if v) or 'no paths configured'

    def load_data_list(self) -> list[dict]:
        """List the samples; raises ``FileNotFoundError`` naming the config key of a missing path."""
        name = type(self).__name__
        img_dir = self.data_prefix['img_path']
        if self.data_root and not osp.isdir(self.data_root):
            raise FileNotFoundError(f'{name}: data_root {self.data_root!r} does not exist')
        if not img_dir:
            raise FileNotFoundError(f'{name}: no image folder; set data_root and/or data_prefix')
        if not osp.isdir(img_dir):
            raise FileNotFoundError(f'{name}: image folder {img_dir!r} does not exist (data_prefix; {self._where()})')
        if self.ann_file:
            return self._from_ann_file(img_dir)
        return self._from_folders(img_dir)

    def _from_ann_file(self, img_dir: str) -> list[dict]:
        name = type(self).__name__
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'{name}: ann_file {self.ann_file!r} does not exist ({self._where()})')
        classes = self._metainfo.get('classes')
        data = []
        with open(self.ann_file) as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                if not self.with_label:
                    data.append(dict(img_path=osp.join(img_dir, line)))
                    continue
                # Split at the last space only: file names may contain spaces, labels do not.
                parts = line.rsplit(' ', 1)
                if len(parts) != 2 or not parts[1].isdigit():
                    raise ValueError(f'{self.ann_file}:{lineno}: expected "<path> <label>", got {line!r}')
                label = int(parts[1])
                if classes is not None and label >= len(classes):
                    raise ValueError(f'{self.ann_file}:{lineno}: label {label} but metainfo has {len(classes)} classes')
                data.append(dict(img_path=osp.join(img_dir, parts[0].strip()), gt_label=label))
        if not data:
            raise ValueError(f'{name}: ann_file {self.ann_file!r} lists no images')
        return data

    def _images(self, folder: str) -> list[str]:
        """Image files under ``folder`` at any depth, sorted."""
        found = []
        for dirpath, dirnames, files in os.walk(folder, followlinks=True):
            dirnames.sort()
            found += [osp.join(dirpath, f) for f in sorted(files) if f.lower().endswith(self.extensions)]
        return found

    def _from_folders(self, img_dir: str) -> list[dict]:
        name = type(self).__name__
        if not self.with_label:
            data = [dict(img_path=p) for p in self._images(img_dir)]
            if not data:
                raise ValueError(f'{name}: no images with suffix {self.extensions} under {img_dir!r}')
            return data

        folders = sorted(d.name for d in os.scandir(img_dir) if d.is_dir())
        if not folders:
            raise ValueError(
                f'{name}: no class folders in {img_dir!r} ({self._where()}); '
                'expected {class}/{image} sub-folders, or set ann_file, or with_label=False'
            )
        label_of = self._folder_labels(folders)
        data, empty = [], []
        for folder in folders:
            paths = self._images(osp.join(img_dir, folder))
            empty += [] if paths else [folder]
            data += [dict(img_path=p, gt_label=label_of[folder]) for p in paths]
        if not data:
            raise ValueError(f'{name}: no images with suffix {self.extensions} in the class folders of {img_dir!r}')
        if empty:
            print_log(f'{name}: {len(empty)} class folder(s) without images: {empty[:5]}', 'current', logging.WARNING)
        return data

    def _folder_labels(self, folders: list[str]) -> dict[str, int]:
        """Folder name -> label; also sets ``metainfo['classes']`` when it was not given."""
        classes = self._metainfo.get('classes')
        if classes is None:
            self._metainfo['classes'] = tuple(folders)
            return {f: i for i, f in enumerate(folders)}
        classes = tuple(classes)
        if set(folders) <= set(classes):
            return {f: classes.index(f) for f in folders}
        if len(classes) == len(folders):  # display names for the sorted folders, e.g. ImageNet wnid folders
            return {f: i for i, f in enumerate(folders)}
        raise ValueError(
            f'{type(self).__name__}: metainfo has {len(classes)} classes but {self.data_prefix["img_path"]!r} has '
            f'{len(folders)} class folders that are not among them (e.g. {folders[0]!r})'
        )

    @property
    def num_skipped_images(self) -> int:
        """How many unreadable samples ``skip_bad_images`` has replaced so far, over all DataLoader workers."""
        return int(self._skipped.item())

    def _prepare_or_raise(self, idx: int):
        try:
            return super().prepare_data(idx)
        except Exception as e:
            path = self.get_data_info(idx).get('img_path', '?')
            raise RuntimeError(f'{type(self).__name__}[{idx}] {path}: {type(e).__name__}: {e}') from e

    def prepare_data(self, idx: int):
        """Run the pipeline on sample ``idx``.

        An error is re-raised naming the sample's index and file; with ``skip_bad_images`` the next samples
        (``idx + 1``, ``idx + 2``, ... wrapping around) are tried instead, each failure counted and logged.
        """
        if not self.skip_bad_images:
            return self._prepare_or_raise(idx)
        n = len(self)
        for attempt in range(min(n, 100)):
            j = (idx + attempt) % n
            try:
                return self._prepare_or_raise(j)
            except RuntimeError as e:
                self._skipped += 1
                print_log(
                    f'skip_bad_images: {e} (bad image {int(self._skipped.item())} of this run; using sample '
                    f'{(j + 1) % n} instead)',
                    'current',
                    logging.WARNING,
                )
        raise RuntimeError(f'{type(self).__name__}: samples {idx}..{(idx + min(n, 100) - 1) % n} are all unreadable')


@DATASETS.register_module()
class ImageNet(CustomDataset):
    """ImageNet in mmpretrain's layout: ``split`` picks the folder ``{split}/`` and ``meta/{split}.txt`` if it exists.

    Without ``meta/{split}.txt`` the class folders of ``{split}/`` are scanned. The classes come from the folder names
    or ``metainfo``; the 1000 ImageNet names are not shipped.

    Args:
        data_root: e.g. 'data/imagenet'.
        split: 'train', 'val' or 'test' ('test' is unlabelled unless ``with_label`` is given); empty to use
            ``data_prefix`` and ``ann_file`` as given.
        data_prefix: Image folder; defaults to ``split``.
        ann_file: Annotation file; defaults to ``meta/{split}.txt`` when that file exists.
        metainfo: e.g. ``dict(classes=(...))``.
        **kwargs: :class:`CustomDataset` arguments.
    """

    def __init__(
        self,
        data_root: str = '',
        split: str = '',
        data_prefix: str | dict = '',
        ann_file: str = '',
        metainfo: dict | None = None,
        **kwargs,
    ):
        if split:
            if split not in ('train', 'val', 'test'):
                raise ValueError(f'ImageNet split must be "train", "val" or "test", got {split!r}')
            data_prefix = data_prefix or split
            if not ann_file and osp.isfile(osp.join(data_root, 'meta', f'{split}.txt')):
                ann_file = f'meta/{split}.txt'
            if split == 'test':
                kwargs.setdefault('with_label', False)
        super().__init__(data_root=data_root, data_prefix=data_prefix, ann_file=ann_file, metainfo=metainfo, **kwargs)
