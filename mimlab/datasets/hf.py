"""Hugging Face ``datasets``: a saved dataset or Arrow file read by index (:class:`HFDataset`), and Parquet / Arrow
files streamed (:class:`HFIterableDataset`), both feeding the encoded image to the same pipelines as the shards.

The image column is read undecoded (``datasets.Image(decode=False)``: the PNG / JPEG bytes as stored), so the
region-decoding ``LoadImageRandomResizedCrop`` and the GPU decode path get ``img_bytes``; other pipelines get ``img``
decoded by cv2 (BGR, as ``LoadImageFromFile``). Labels come from ``label_key``; a ``ClassLabel`` column also gives
``metainfo['classes']``.
"""

import logging
import os.path as osp
from collections.abc import Iterator, Sequence

import torch
from mmcv.transforms import Compose
from mmengine.logging import print_log
from mmengine.registry import DefaultScope

from mimlab.registry import DATASETS

from .streaming import BYTE_READERS, FILE_LOADERS, StreamedDataset, _transform_name, prepare_encoded

__all__ = ['HFDataset', 'HFIterableDataset']


def _image_bytes(value, where: str) -> bytes:
    """The encoded bytes of an undecoded ``datasets.Image`` value (``{'bytes', 'path'}``), or raw bytes."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, dict):
        if value.get('bytes'):
            return value['bytes']
        if value.get('path'):
            import fsspec

            with fsspec.open(value['path'], 'rb') as f:
                return f.read()
    raise ValueError(f'{where}: the image column holds {type(value).__name__}, not encoded image bytes')


def _undecoded(ds, image_key: str, label_key: str | None, with_label: bool, where: str):
    """``ds`` with its image column undecoded; checks the columns. Returns (dataset, class names or None)."""
    import datasets

    columns = list(ds.features) if ds.features is not None else []
    if columns and image_key not in columns:
        raise KeyError(f'{where}: no image column {image_key!r} (image_key); columns: {columns}')
    if with_label and columns and label_key not in columns:
        raise KeyError(f'{where}: no label column {label_key!r} (label_key; with_label=False for none); {columns}')
    if columns and isinstance(ds.features[image_key], datasets.Image):
        ds = ds.cast_column(image_key, datasets.Image(decode=False))
    classes = None
    if with_label and columns and isinstance(ds.features[label_key], datasets.ClassLabel):
        classes = tuple(ds.features[label_key].names)
    return ds, classes


def _pipeline(pipeline: Sequence) -> tuple[Compose, bool]:
    pipeline = list(pipeline)
    first = _transform_name(pipeline[0]) if pipeline else ''
    if first in FILE_LOADERS:
        pipeline = pipeline[1:]
    with DefaultScope.overwrite_default_scope('mimlab'):
        return Compose(pipeline), first in BYTE_READERS


@DATASETS.register_module()
class HFDataset(torch.utils.data.Dataset):
    """A Hugging Face dataset on local disk, read by index (a map-style dataset: any sampler, exact resume).

    Args:
        path: A folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, or an ``.arrow`` file.
        split: The split of a saved ``DatasetDict``.
        image_key: The image column (``datasets.Image`` or bytes).
        label_key: The label column (int or ``ClassLabel``).
        with_label: Put ``gt_label`` into the samples.
        pipeline: Transforms; as for :class:`~mimlab.datasets.WebDataset`, a fast loader first gets ``img_bytes``,
            other pipelines ``img`` (a leading ``LoadImageFromFile`` is dropped).
        skip_bad_images: Replace an undecodable row by the next readable one, counted and named in a warning.
        metainfo: e.g. ``dict(classes=(...))``; by default the ``ClassLabel`` names.
        test_mode: mmengine test mode (no effect here).
    """

    def __init__(
        self,
        path: str,
        split: str = 'train',
        image_key: str = 'image',
        label_key: str = 'label',
        with_label: bool = True,
        pipeline: Sequence = (),
        skip_bad_images: bool = False,
        metainfo: dict | None = None,
        test_mode: bool = False,
    ):
        import datasets

        self.path, self.split, self.image_key, self.label_key = path, split, image_key, label_key
        self.with_label, self.skip_bad_images, self.test_mode = with_label, skip_bad_images, test_mode
        if path.endswith('.arrow'):
            if not osp.isfile(path):
                raise FileNotFoundError(f'HFDataset: {path!r} does not exist')
            ds = datasets.Dataset.from_file(path)
        else:
            if not osp.isdir(path):
                raise FileNotFoundError(f'HFDataset: {path!r} is not a folder written by save_to_disk')
            ds = datasets.load_from_disk(path)
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise KeyError(f'HFDataset: {path} has splits {sorted(ds)}, not {split!r}')
                ds = ds[split]
        self.name = f'{osp.basename(osp.normpath(path))}[{split}]'
        self.data, classes = _undecoded(ds, image_key, label_key, with_label, f'HFDataset {self.name}')
        self._metainfo = dict(metainfo or ({'classes': classes} if classes else {}))
        self.pipeline, self.reads_bytes = _pipeline(pipeline)
        self._skipped = torch.zeros(1, dtype=torch.int64).share_memory_()

    @property
    def metainfo(self) -> dict:
        return dict(self._metainfo)

    def full_init(self) -> None:
        """Nothing to do (mmengine's runner calls it)."""

    def __len__(self) -> int:
        return len(self.data)

    @property
    def num_skipped_images(self) -> int:
        """How many unreadable rows ``skip_bad_images`` has replaced so far, over all DataLoader workers."""
        return int(self._skipped.item())

    def get_data_info(self, idx: int) -> dict:
        """Row ``idx`` as pipeline input (``img_path`` names the dataset and row)."""
        row = self.data[idx]
        where = f'{self.name} row {idx}'
        results = prepare_encoded(_image_bytes(row[self.image_key], where), where, self.reads_bytes)
        if self.with_label:
            results['gt_label'] = int(row[self.label_key])
        results['sample_idx'] = idx
        return results

    def _prepare(self, idx: int) -> dict:
        try:
            out = self.pipeline(self.get_data_info(idx))
            if out is None:
                raise RuntimeError('the pipeline dropped it')
            return out
        except Exception as e:
            raise RuntimeError(f'HFDataset: {self.name} row {idx}: {type(e).__name__}: {e}') from e

    def __getitem__(self, idx: int) -> dict:
        from mimlab.datasets.transforms.fast_loading import limit_worker_threads

        limit_worker_threads()
        if not self.skip_bad_images:
            return self._prepare(idx)
        n = len(self)
        for attempt in range(min(n, 100)):
            try:
                return self._prepare((idx + attempt) % n)
            except RuntimeError as e:
                self._skipped += 1
                print_log(f'skip_bad_images: {e} (using the next row instead)', 'current', logging.WARNING)
        raise RuntimeError(f'HFDataset: rows {idx}..{(idx + min(n, 100) - 1) % n} of {self.name} are all unreadable')


@DATASETS.register_module()
class HFIterableDataset(StreamedDataset):
    """Parquet or Arrow files of a Hugging Face dataset, streamed with ``datasets`` (``streaming=True``).

    Each file is a shard: the files are split across ranks and workers, shuffled and resumed exactly as WebDataset
    shards (:mod:`mimlab.datasets.streaming`); the row count of each file is read from its metadata (Parquet
    footer, Arrow table) when the dataset is built.

    Args:
        data_files: Files or glob patterns (local, or fsspec URLs such as ``hf://datasets/org/name/data/*.parquet``).
        image_key: The image column.
        label_key: The label column.
        with_label: Put ``gt_label`` into the samples.
        **kwargs: :class:`~mimlab.datasets.streaming.StreamedDataset` arguments (``samples_per_epoch``,
            ``shuffle``, ``shuffle_buffer``, ``seed``, ``pipeline``, ``skip_bad_images``, ``metainfo``).
    """

    def __init__(
        self,
        data_files: str | Sequence[str],
        image_key: str = 'image',
        label_key: str = 'label',
        with_label: bool = True,
        **kwargs,
    ):
        import fsspec

        patterns = [data_files] if isinstance(data_files, str) else list(data_files)
        files = []
        for p in patterns:
            if any(c in p for c in '*?['):
                files += sorted(f.full_name if '://' in p else f.path for f in fsspec.open_files(p))
            else:
                files.append(p)
        if not files:
            raise FileNotFoundError(f'HFIterableDataset: no files match {patterns}')
        self.files = files
        self.image_key, self.label_key, self.with_label = image_key, label_key, with_label
        super().__init__(**kwargs)

    def describe(self) -> str:
        return f'data_files={self.files[0]!r} ... ({len(self.files)} files)'

    def _format(self, f: str) -> str:
        return 'parquet' if f.endswith('.parquet') else 'arrow'

    def shard_sizes(self) -> list[int]:
        import fsspec
        import pyarrow as pa
        import pyarrow.ipc as ipc
        import pyarrow.parquet as pq

        sizes = []
        for f in self.files:
            try:
                if self._format(f) == 'arrow' and '://' not in f:  # an Arrow stream has no footer: map, don't read
                    sizes.append(ipc.open_stream(pa.memory_map(f)).read_all().num_rows)
                    continue
                with fsspec.open(f, 'rb') as fh:
                    if self._format(f) == 'parquet':
                        sizes.append(pq.ParquetFile(fh).metadata.num_rows)  # the footer only
                    else:
                        sizes.append(ipc.open_stream(fh).read_all().num_rows)
            except Exception as e:
                raise OSError(f'HFIterableDataset: cannot read the row count of {f}: {type(e).__name__}: {e}') from e
        return sizes

    def shard_name(self, shard: int) -> str:
        return f'file {osp.basename(self.files[shard])}'

    def read_shard(self, shard: int, start: int) -> Iterator[tuple[str, tuple]]:
        import datasets

        f = self.files[shard]
        name = osp.basename(f)
        stream = datasets.load_dataset(self._format(f), data_files=[f], split='train', streaming=True)
        stream, _ = _undecoded(stream, self.image_key, self.label_key, self.with_label, f'HFIterableDataset {name}')
        if start:
            stream = stream.skip(start)
        i = start
        # .iter(), not iter(): a datasets.IterableDataset iterated in a DataLoader worker splits itself across the
        # workers, and this class has already decided which worker reads which rows
        for batch in stream.iter(batch_size=64):
            for row in (dict(zip(batch, values)) for values in zip(*batch.values())):
                yield f'file {name}, row {i}', (f'{name} row {i}', row)
                i += 1

    def to_results(self, raw) -> dict:
        where, row = raw
        results = prepare_encoded(_image_bytes(row[self.image_key], where), where, self.reads_bytes)
        if self.with_label:
            results['gt_label'] = int(row[self.label_key])
        return results
