"""WebDataset tar shards: the registered :class:`WebDataset`, a shard writer and a shard checker.

A shard is a tar file whose members are grouped into samples by their key (the file name up to its first dot):
``000000123.jpg`` and ``000000123.cls`` are sample ``000000123``'s image and label. The ``webdataset`` package opens
the streams (local paths, ``file:``, ``pipe:cmd`` and the URL schemes of ``webdataset.gopen``), expands brace lists
(``train-{000000..001023}.tar``), splits member names into key and extension, and writes shards (``TarWriter``). The
members are parsed by :func:`tar_members` (Python's ``tarfile``, which webdataset's reader uses, is 6x slower per
member here), and :class:`~mimlab.datasets.streaming.StreamedDataset` decides which worker reads which samples in
which order, because an exact split across ranks and workers and a mid-epoch resume need sample counts and positions
that webdataset's own pipeline stages (``split_by_node``, ``shuffle``, ``with_epoch``) do not expose.

The writer (:func:`write_shards`, behind ``tools/dataset_converters/images_to_shards.py``) writes a
``manifest.json`` next to the shards: per shard its name, samples, bytes and SHA-256. :class:`WebDataset` takes the
sample counts from it; without one it counts the members of each shard once when it is built (a read of every shard's
headers: fine for local files, slow for remote ones).
"""

import hashlib
import json
import os
import os.path as osp
import tarfile
from collections.abc import Iterator, Sequence
from multiprocessing import get_context

from mmengine.utils import ProgressBar

from mimlab.registry import DATASETS

from .streaming import StreamedDataset, prepare_encoded, shard_label

__all__ = [
    'WebDataset',
    'expand_shard_urls',
    'read_manifest',
    'samples_from_files',
    'write_shards',
    'verify_shards',
    'MANIFEST',
]

MANIFEST = 'manifest.json'
IMAGE_EXTS = ('jpg', 'jpeg', 'png', 'webp', 'bmp', 'ppm', 'tif', 'tiff')


def expand_shard_urls(urls: str | Sequence[str]) -> list[str]:
    """Shard URLs from a brace pattern (``train-{000..009}.tar``), a ``::``-separated string or a list of them."""
    from webdataset.shardlists import expand_urls

    urls = [urls] if isinstance(urls, str) else list(urls)
    out = []
    for u in urls:
        out += expand_urls(u)
    return out


def _split_key(name: str) -> tuple[str, str]:
    """``dir/000123.cls.txt`` -> (``dir/000123``, ``cls.txt``): the key ends at the first dot of the base name."""
    from webdataset.tariterators import base_plus_ext

    key, ext = base_plus_ext(name)
    if key is None:
        return name, ''
    return key, ext.lower()


_ZERO_BLOCK = bytes(512)


def _octal(field: bytes) -> int:
    """A tar header number: octal text, or base-256 when the first byte has its high bit set (GNU, > 8 GiB)."""
    if field[:1] and field[0] & 0x80:
        return int.from_bytes(field[1:], 'big')
    field = field.split(b'\0', 1)[0].strip()
    return int(field, 8) if field else 0


def tar_members(stream) -> Iterator[tuple[str, bytes]]:
    """``(name, data)`` of each regular file of an uncompressed tar stream, read sequentially.

    A lean reader: Python's ``tarfile`` (which webdataset's ``tar_file_iterator`` uses) spends ~0.25 ms per member
    here in its stream layer and ``TarInfo`` objects, 7 % of the time the fast path needs to decode and crop a
    500 x 375 JPEG; this one reads each 512-byte header and the data with two ``read`` calls. It understands the
    ustar, GNU long-name (``L``) and pax (``x``) headers; directories, links and pax globals are passed over.

    Raises:
        EOFError: The stream ends inside a header or a member. tarfile.ReadError: A header's checksum is wrong.
    """
    long_name = None
    while True:
        header = stream.read(512)
        if len(header) < 512:
            if not header:
                return  # no end-of-archive blocks, but ended at a member boundary (as tarfile accepts)
            raise EOFError('truncated header')
        if header == _ZERO_BLOCK:
            return
        checksum = sum(header[:148]) + 256 + sum(header[156:])  # the checksum field counts as 8 spaces
        if checksum != _octal(header[148:156]):
            raise tarfile.ReadError('bad header checksum')
        size, kind = _octal(header[124:136]), header[156:157]
        data = stream.read(size)
        if len(data) < size:
            raise EOFError(f'unexpected end of data ({len(data)} of {size} bytes)')
        if size % 512:
            stream.read(512 - size % 512)
        if kind == b'L':
            long_name = data.rstrip(b'\0').decode()
        elif kind == b'x':
            for record in data.decode().split('\n'):
                key, _, value = record.partition(' ')[2].partition('=')
                if key == 'path':
                    long_name = value
        elif kind in (b'0', b'\0', b'7'):
            name = header[:100].split(b'\0', 1)[0].decode()
            prefix = header[345:500].split(b'\0', 1)[0].decode() if header[257:262] == b'ustar' else ''
            yield long_name or (f'{prefix}/{name}' if prefix else name), data
            long_name = None
        elif kind != b'g':
            long_name = None


def iter_shard_members(url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {ext: bytes})`` for each sample of a shard, in tar order.

    Raises:
        OSError: naming the shard and the last complete key when the shard cannot be opened or ends inside a member.
    """
    from webdataset.gopen import gopen

    name = shard_label(url)
    key, members, last = None, {}, None
    try:
        stream = gopen(url, 'rb')
    except Exception as e:
        raise OSError(f'shard {url}: cannot open it: {type(e).__name__}: {e}') from e
    try:
        for fname, data in tar_members(stream):
            if fname.startswith('__') or '/__' in fname:  # webdataset's meta members (__key__ ...)
                continue
            k, ext = _split_key(fname)
            if k != key and key is not None:
                yield key, members
                last, members = key, {}
            key = k
            members[ext] = data
        if key is not None:
            yield key, members
    except (tarfile.TarError, OSError, EOFError) as e:
        after = f'after key {last!r}' if last is not None else 'before its first complete sample'
        raise OSError(
            f'shard {name}: truncated or corrupt {after} (while reading key {key!r}): {type(e).__name__}: '
            f'{str(e).split(" @ ")[0]}'
        ) from e
    finally:
        close = getattr(stream, 'close', None)
        if close is not None:
            close()


def read_manifest(path: str) -> dict:
    """The ``manifest.json`` written by :func:`write_shards`: ``dict(shards=[dict(name, samples, bytes, sha256)],
    samples=..., bytes=...)``."""
    with open(path) as f:
        manifest = json.load(f)
    if 'shards' not in manifest:
        raise ValueError(f'{path}: not a shard manifest (no "shards" list)')
    return manifest


def count_shard_samples(url: str) -> int:
    """Samples (distinct consecutive keys) of a shard, from its member headers."""
    if '://' not in url and not url.startswith('pipe:') and osp.isfile(url):
        names = []
        try:
            with tarfile.open(url, 'r:') as tar:  # seekable: headers only, the data is skipped
                names = [m.name for m in tar if m.isreg()]
        except (tarfile.TarError, OSError, EOFError) as e:
            raise OSError(f'shard {url}: cannot count its samples: {type(e).__name__}: {e}') from e
        keys = [_split_key(n)[0] for n in names]
        return sum(1 for i, k in enumerate(keys) if i == 0 or k != keys[i - 1])
    return sum(1 for _ in iter_shard_members(url))


@DATASETS.register_module()
class WebDataset(StreamedDataset):
    """Images (and labels) from WebDataset tar shards, streamed, split across ranks and workers, resumable.

    Each sample needs one image member (the first of ``image_keys`` it has); ``gt_label`` comes from a ``cls``
    member (an integer as text) or from a ``json`` member's ``label_field``, when present. See
    :mod:`mimlab.datasets.streaming` for the order, the split and the resume.

    Args:
        urls: Shards: a brace pattern (``data/train-{000000..000146}.tar``), a list, ``pipe:`` commands
            (``pipe:aws s3 cp s3://bucket/train-000000.tar -``) or URLs ``webdataset.gopen`` opens. Relative paths
            are relative to ``data_root``.
        data_root: Folder of the shards and the manifest.
        manifest: ``manifest.json`` with the sample count of each shard (default: ``data_root/manifest.json`` if it
            exists, else the shards are counted once). Shards it does not list are an error.
        image_keys: Member extensions that hold the image, in order of preference.
        label_key: Member extension of the class id (``cls``); ``json`` members are read for ``label_field``.
        label_field: The label's key in a ``json`` member.
        with_label: Put ``gt_label`` into the samples (an error for a sample without one).
        **kwargs: :class:`~mimlab.datasets.streaming.StreamedDataset` arguments (``samples_per_epoch``,
            ``shuffle``, ``shuffle_buffer``, ``seed``, ``pipeline``, ``skip_bad_images``, ``metainfo``).
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        data_root: str = '',
        manifest: str | None = None,
        image_keys: Sequence[str] = IMAGE_EXTS,
        label_key: str = 'cls',
        label_field: str = 'label',
        with_label: bool = True,
        **kwargs,
    ):
        urls = expand_shard_urls(urls)
        if not urls:
            raise ValueError('WebDataset: no shards (urls is empty)')
        self.urls = [
            u if (osp.isabs(u) or '://' in u or u.startswith('pipe:') or not data_root) else osp.join(data_root, u)
            for u in urls
        ]
        if manifest is None and data_root and osp.isfile(osp.join(data_root, MANIFEST)):
            manifest = osp.join(data_root, MANIFEST)
        elif manifest and data_root and not osp.isabs(manifest):
            manifest = osp.join(data_root, manifest)
        self.manifest = manifest
        self.image_keys = tuple(k.lower() for k in image_keys)
        self.label_key, self.label_field, self.with_label = label_key, label_field, with_label
        super().__init__(**kwargs)

    def describe(self) -> str:
        more = f' ... ({len(self.urls)} shards)' if len(self.urls) > 1 else ''
        return f'urls={self.urls[0]!r}{more}, manifest={self.manifest!r}'

    def shard_sizes(self) -> list[int]:
        if not self.manifest:
            missing = [u for u in self.urls if '://' not in u and not u.startswith('pipe:') and not osp.isfile(u)]
            if missing:
                raise FileNotFoundError(f'WebDataset: shard {missing[0]} does not exist ({len(missing)} missing)')
            return [count_shard_samples(u) for u in self.urls]
        if not osp.isfile(self.manifest):
            raise FileNotFoundError(f'WebDataset: manifest {self.manifest!r} does not exist')
        listed = {s['name']: int(s['samples']) for s in read_manifest(self.manifest)['shards']}
        sizes = []
        for u in self.urls:
            name = osp.basename(u.split()[-1]) if u.startswith('pipe:') else osp.basename(u)
            if name not in listed:
                raise ValueError(f'WebDataset: shard {u} is not in the manifest {self.manifest}')
            sizes.append(listed[name])
        return sizes

    def shard_name(self, shard: int) -> str:
        return f'shard {shard_label(self.urls[shard])}'

    def read_shard(self, shard: int, start: int) -> Iterator[tuple[str, tuple]]:
        name = shard_label(self.urls[shard])
        for i, (key, members) in enumerate(iter_shard_members(self.urls[shard])):
            if i >= start:
                yield f'shard {name}, key {key}', (name, key, members)

    def to_results(self, raw) -> dict:
        name, key, members = raw
        ext = next((e for e in self.image_keys if e in members), None)
        if ext is None:
            raise KeyError(f'no image member (one of {self.image_keys}); members: {sorted(members)}')
        results = prepare_encoded(members[ext], f'{name}/{key}.{ext}', self.reads_bytes)
        if self.with_label:
            results['gt_label'] = self._label(members)
        return results

    def _label(self, members: dict) -> int:
        if self.label_key in members:
            return int(members[self.label_key].decode().strip())
        if 'json' in members:
            meta = json.loads(members['json'])
            if self.label_field in meta:
                return int(meta[self.label_field])
        raise KeyError(f'no label: neither a {self.label_key!r} member nor "{self.label_field}" in a json member')


# -- writing ---------------------------------------------------------------------------------------------------------


def _write_one(job: tuple) -> dict:
    """Write one shard; ``job`` = (path, [(key, {ext: source file or bytes})]). Returns its manifest entry."""
    from webdataset import TarWriter

    path, samples = job
    tmp = path + '.tmp'
    with TarWriter(tmp, encoder=False, mtime=0.0) as sink:  # fixed mtime: the same input gives the same bytes
        for key, members in samples:
            obj = {'__key__': key}
            for ext, value in members.items():
                if isinstance(value, str) and ext in IMAGE_EXTS:
                    with open(value, 'rb') as f:
                        value = f.read()
                obj[ext] = value.encode() if isinstance(value, str) else value
            sink.write(obj)
    digest, size = hashlib.sha256(), 0
    with open(tmp, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
            size += len(block)
    os.replace(tmp, path)
    return dict(name=osp.basename(path), samples=len(samples), bytes=size, sha256=digest.hexdigest())


def samples_from_files(infos: Sequence[dict], shuffle_seed: int | None = 0) -> list[tuple[str, dict]]:
    """Shard samples from a file dataset's ``data_list`` (``dict(img_path=..., gt_label=...)`` each).

    Args:
        infos: e.g. ``ImageNet(...).data_list`` entries (``gt_label`` optional).
        shuffle_seed: Mix the samples before sharding (so each shard holds many classes and the shard-level
            shuffle plus a bounded buffer is close to a full shuffle); None keeps the given order.

    Returns:
        ``(key, {ext: img_path, 'cls': label})``, keyed by the index in ``infos`` (``{index:09d}``).
    """
    import numpy as np

    n = len(infos)
    order = np.arange(n) if shuffle_seed is None else np.random.default_rng(shuffle_seed).permutation(n)
    out = []
    for i in order:
        info = infos[int(i)]
        ext = osp.splitext(info['img_path'])[1].lstrip('.').lower()
        ext = {'jpeg': 'jpg', 'tif': 'tiff'}.get(ext, ext)
        members = {ext: info['img_path']}
        if info.get('gt_label') is not None:
            members['cls'] = str(int(info['gt_label']))
        out.append((f'{int(i):09d}', members))
    return out


def write_shards(
    samples: Sequence[tuple[str, dict]],
    out_dir: str,
    prefix: str = 'train',
    samples_per_shard: int = 1000,
    workers: int = 1,
    progress: bool = True,
) -> dict:
    """Write samples into tar shards ``{out_dir}/{prefix}-{i:06d}.tar`` and ``{out_dir}/manifest.json``.

    Args:
        samples: ``(key, {ext: value})`` per sample, in the order the shards should hold them; an image value may be
            a file path (read when written) or bytes, other values bytes or text (e.g. ``{'jpg': path, 'cls': '3'}``).
            Keys must not contain dots.
        out_dir: Output folder (created).
        prefix: Shard file prefix.
        samples_per_shard: Samples per shard (the last shard has the rest).
        workers: Shards written in parallel.
        progress: Show a progress bar (one tick per shard).

    Returns:
        The manifest: ``dict(shards=[dict(name, samples, bytes, sha256)], samples=N, bytes=total, pattern=...)``.
    """
    if samples_per_shard < 1:
        raise ValueError(f'samples_per_shard must be >= 1, got {samples_per_shard}')
    bad = [k for k, _ in samples if '.' in k or '/' in k]
    if bad:
        raise ValueError(f'sample keys must not contain "." or "/": {bad[0]!r}')
    os.makedirs(out_dir, exist_ok=True)
    n_shards = -(-len(samples) // samples_per_shard)
    jobs = [
        (osp.join(out_dir, f'{prefix}-{i:06d}.tar'), list(samples[i * samples_per_shard : (i + 1) * samples_per_shard]))
        for i in range(n_shards)
    ]
    bar = ProgressBar(len(jobs)) if progress and jobs else None
    entries = []
    if workers > 1:
        with get_context('spawn').Pool(workers) as pool:  # a fork of a process with torch's threads can deadlock
            for entry in pool.imap(_write_one, jobs):
                entries.append(entry)
                if bar:
                    bar.update()
    else:
        for job in jobs:
            entries.append(_write_one(job))
            if bar:
                bar.update()
    manifest = dict(
        pattern=f'{prefix}-{{{0:06d}..{max(n_shards - 1, 0):06d}}}.tar',
        num_shards=n_shards,
        samples=sum(e['samples'] for e in entries),
        bytes=sum(e['bytes'] for e in entries),
        shards=entries,
    )
    tmp = osp.join(out_dir, MANIFEST + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp, osp.join(out_dir, MANIFEST))
    return manifest


# -- checking --------------------------------------------------------------------------------------------------------


def _check_shard(job: tuple) -> tuple[int, list[tuple[str, str, str]]]:
    """(samples read, [(shard, key, reason)]) of one shard: every image member fully decoded, the checksum and the
    sample count compared with the manifest entry when there is one."""
    from .verify import check_image_bytes

    url, entry, image_keys = job
    name, bad, n, last = shard_label(url), [], 0, None
    try:
        for key, members in iter_shard_members(url):
            n, last = n + 1, key
            ext = next((e for e in image_keys if e in members), None)
            reason = 'no image member' if ext is None else check_image_bytes(members[ext])
            if reason is not None:
                bad.append((name, key, reason))
    except OSError as e:
        bad.append((name, '-', str(e)))
    if entry is not None:
        if n != entry['samples']:
            truncated = f' (truncated after key {last!r}?)' if n < entry['samples'] else ''
            bad.append((name, '-', f'{n} samples, the manifest says {entry["samples"]}{truncated}'))
        if entry.get('sha256') and osp.isfile(url):
            digest = hashlib.sha256()
            with open(url, 'rb') as f:
                for block in iter(lambda: f.read(1 << 20), b''):
                    digest.update(block)
            if digest.hexdigest() != entry['sha256']:
                bad.append((name, '-', 'SHA-256 differs from the manifest'))
    return n, bad


def verify_shards(
    urls: Sequence[str], manifest: str | None = None, workers: int = 1, progress: bool = True, image_keys=IMAGE_EXTS
) -> tuple[int, list[tuple[str, str, str]]]:
    """Decode every image of every shard; ``(samples read, [(shard, key, reason)])`` for each problem, in order.

    Args:
        urls: Shard URLs (expanded).
        manifest: Its sample counts and checksums are checked too.
        workers: Shards checked in parallel.
        progress: Show a progress bar (one tick per shard).
        image_keys: Member extensions that hold the image.
    """
    entries = {}
    if manifest:
        entries = {s['name']: s for s in read_manifest(manifest)['shards']}
    jobs = [(u, entries.get(osp.basename(u)), tuple(image_keys)) for u in urls]
    bar = ProgressBar(len(jobs)) if progress and jobs else None
    total, bad = 0, []
    if workers > 1:
        with get_context('spawn').Pool(workers) as pool:  # a fork of a process with torch's threads can deadlock
            results = list(_tick(pool.imap(_check_shard, jobs), bar))
    else:
        results = list(_tick(map(_check_shard, jobs), bar))
    for n, b in results:
        total += n
        bad += b
    return total, bad


def _tick(results, bar):
    for r in results:
        if bar:
            bar.update()
        yield r
