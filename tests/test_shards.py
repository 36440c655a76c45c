"""WebDataset shards written from the built-in dataset: exact split over ranks and workers, seeded order, mid-epoch
resume, the fast path on encoded bytes, bad shards, the shard tools."""

import io
import os
import socket
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from mimlab.datasets import BuiltinDataset, ImageNet, WebDataset, write_builtin_dataset
from mimlab.datasets.shards import samples_from_files, verify_shards, write_shards
from mimlab.datasets.streaming import rank_slot_ranges

ROOT = Path(__file__).resolve().parents[1]
NUM = 100  # 6 shards of 15 and one of 10
PATTERN = 'train-{000000..000006}.tar'


def _write(root: Path, fmt: str) -> Path:
    write_builtin_dataset(str(root / 'folder'), num_train=NUM, num_val=0, img_size=32, fmt=fmt)
    ds = ImageNet(data_root=str(root / 'folder'), split='train')
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    write_shards(samples_from_files(infos), str(root / 'shards'), samples_per_shard=15, workers=2, progress=False)
    return root / 'shards'


@pytest.fixture(scope='module')
def shards(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp('jpg'), 'jpg')


def keys_of(batches) -> list[str]:
    return [s['data_samples'].img_path for b in batches for s in b]


def loader(dataset, batch_size=4, workers=2):
    dataset.set_batch_size(batch_size)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=list)


def dataset(root, **kw):
    kw.setdefault('pipeline', [dict(type='PackInputs')])
    return WebDataset(urls=PATTERN, data_root=str(root), shuffle_buffer=kw.pop('shuffle_buffer', 8), **kw)


def test_manifest_counts_bytes_and_checksums(shards):
    import hashlib
    import json

    manifest = json.loads((shards / 'manifest.json').read_text())
    assert manifest['num_shards'] == 7 and manifest['samples'] == NUM
    assert [s['samples'] for s in manifest['shards']] == [15] * 6 + [10]
    for s in manifest['shards']:
        data = (shards / s['name']).read_bytes()
        assert s['bytes'] == len(data) and s['sha256'] == hashlib.sha256(data).hexdigest()
    with tarfile.open(shards / 'train-000000.tar') as tar:
        names = tar.getnames()
    assert len(names) == 30 and {n.split('.', 1)[1] for n in names} == {'jpg', 'cls'}
    # written again from the same files: the same bytes (fixed member times)
    again = _write(shards.parent / 'again', 'jpg')
    assert (again / 'train-000003.tar').read_bytes() == (shards / 'train-000003.tar').read_bytes()


def test_slot_ranges_deal_batches_round_robin():
    # 50 samples in batches of 8: batches 0..6 (the last has 2); slot 0 gives batches 0, 2, 4, 6
    assert rank_slot_ranges(50, 8, 2) == [(0, 26, 4), (26, 24, 3)]
    assert rank_slot_ranges(10, 4, 3) == [(0, 4, 1), (4, 4, 1), (8, 2, 1)]
    assert rank_slot_ranges(5, 1, 1) == [(0, 5, 5)]


def _rank_main(rank, world, port, root, out):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    ds = dataset(root)
    result = {}
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        batches = list(loader(ds, batch_size=4, workers=2))
        result[epoch] = (keys_of(batches), [len(b) for b in batches], len(loader(ds, 4, 2)))
    torch.save(result, f'{out}/rank{rank}.pt')
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_ranks_two_workers_read_every_sample_once_per_epoch(shards, tmp_path):
    # spawn, not fork: a fork of the test process (torch's thread pools, earlier tests' threads) can deadlock on a
    # lock held by a thread that the child does not have, as it did in the full suite
    mp.spawn(_rank_main, args=(2, _free_port(), str(shards), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in range(2)]
    everything = {f'train-{i // 15:06d}.tar' for i in range(NUM)}
    orders = []
    for epoch in (0, 1):
        keys = ranks[0][epoch][0] + ranks[1][epoch][0]
        assert len(keys) == NUM and len(set(keys)) == NUM  # each sample once
        assert {k.split('/')[0] for k in keys} == everything
        for r in range(2):
            keys_r, sizes, num_batches = ranks[r][epoch]
            assert len(keys_r) == NUM // 2 and sizes == [4] * 12 + [2] and num_batches == 13  # len(DataLoader)
        orders.append(keys)
    assert orders[0] != orders[1] and sorted(orders[0]) == sorted(orders[1])  # reshuffled per epoch


def test_same_seed_and_epoch_same_order_and_no_shuffle_reads_in_order(shards):
    a, b, c = dataset(shards, seed=3), dataset(shards, seed=3), dataset(shards, seed=4)
    for ds in (a, b, c):
        ds.set_epoch(2)
    first = keys_of(loader(a))
    assert first == keys_of(loader(b)) and first == keys_of(loader(a))
    assert first != keys_of(loader(c)) and sorted(first) == sorted(keys_of(loader(c)))
    plain = dataset(shards, shuffle=False)
    expected = []
    for i in range(7):
        with tarfile.open(shards / f'train-{i:06d}.tar') as tar:
            expected += [f'train-{i:06d}.tar/{n}' for n in tar.getnames() if n.endswith('.jpg')]
    assert keys_of(loader(plain, batch_size=5, workers=1)) == expected


def test_samples_per_epoch_walks_through_passes(shards):
    ds = dataset(shards, samples_per_epoch=40)
    seen = []
    for epoch in range(5):  # 200 samples: two passes of 100, each sample once per pass
        ds.set_epoch(epoch)
        keys = keys_of(loader(ds, batch_size=5, workers=2))
        assert len(keys) == 40
        seen += keys
    # positions 80..119 (epoch 2) straddle the passes; each worker's buffer mixes them, so count per sample
    assert sorted(Counter(seen).values()) == [2] * NUM
    assert len(set(seen[:80])) == 80 and len(set(seen[120:])) == 80


@pytest.mark.parametrize('done', [1, 4, 7])
def test_resumed_epoch_gives_the_remaining_batches_of_the_uninterrupted_one(shards, done):
    full = dataset(shards)
    full.set_epoch(1)
    batches = [keys_of([b]) for b in loader(full, batch_size=4, workers=3)]
    resumed = dataset(shards)  # a new process's dataset
    resumed.set_batch_size(4)
    resumed.set_epoch(1)
    resumed.skip(done * 4)
    rest = [keys_of([b]) for b in loader(resumed, batch_size=4, workers=3)]
    assert rest == batches[done:]


class CountingWebDataset(WebDataset):
    """Counts the samples it reads from the shards (raw, before any decoding)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.read = 0

    def read_shard(self, shard, start):
        for item in super().read_shard(shard, start):
            self.read += 1
            yield item


def test_a_resumed_slot_starts_reading_near_where_it_stopped(shards):
    kw = dict(urls=PATTERN, data_root=str(shards), shuffle_buffer=4, pipeline=[dict(type='PackInputs')])
    full, resumed = CountingWebDataset(**kw), CountingWebDataset(**kw)
    full.set_batch_size(4)
    resumed.set_batch_size(4)
    resumed.skip(20 * 4)  # 20 of 25 batches done (one worker)
    keys = [s['data_samples'].img_path for s in full]
    assert [s['data_samples'].img_path for s in resumed] == keys[80:]
    assert full.read == NUM and resumed.read < 40  # not the 80 given before the interruption


def test_fast_path_on_bytes_equals_the_file_path_and_png_decodes(shards, tmp_path):
    from mmengine.registry import DefaultScope

    from mimlab.registry import TRANSFORMS

    with DefaultScope.overwrite_default_scope('mimlab'):
        t = TRANSFORMS.build(dict(type='LoadImageRandomResizedCrop', scale=16, flip_prob=0.5))
    path = next((shards.parent / 'folder/train').rglob('*.jpg'))
    np.random.seed(0)
    from_file = t(dict(img_path=str(path)))['img']
    np.random.seed(0)
    from_bytes = t(dict(img_path='shard/key.jpg', img_bytes=path.read_bytes()))['img']
    assert np.array_equal(from_file, from_bytes)

    png = _write(tmp_path, 'png')  # lossless: decodes to exactly the rendered images
    ds = WebDataset(urls=PATTERN, data_root=str(png), shuffle=False, pipeline=[dict(type='PackInputs')])
    ref = BuiltinDataset(num_samples=NUM, img_size=32, lazy_init=True)
    for sample in list(ds)[:5]:
        idx = int(sample['data_samples'].img_path.split('/')[1].split('.')[0])
        img, label = ref.render(idx)
        assert np.array_equal(sample['inputs'].numpy(), img.transpose(2, 0, 1))
        assert int(sample['data_samples'].gt_label) == label
    fast = WebDataset(
        urls=PATTERN,
        data_root=str(png),
        shuffle=False,
        pipeline=[dict(type='LoadImageRandomResizedCrop', scale=16), dict(type='PackInputs')],
    )
    assert next(iter(fast))['inputs'].shape == (3, 16, 16)


def _truncate(src: Path, dst: Path) -> None:
    dst.mkdir()
    for f in src.glob('*.tar'):
        data = f.read_bytes()
        (dst / f.name).write_bytes(data[: len(data) // 2 - 100] if f.name == 'train-000002.tar' else data)
    (dst / 'manifest.json').write_text((src / 'manifest.json').read_text())


def test_truncated_shard_is_named_or_skipped_and_counted(shards, tmp_path):
    _truncate(shards, tmp_path / 'cut')
    ds = dataset(tmp_path / 'cut', shuffle=False)
    with pytest.raises(OSError, match=r'shard train-000002\.tar: truncated or corrupt after key'):
        list(loader(ds, workers=2))
    ds = dataset(tmp_path / 'cut', shuffle=False, skip_bad_images=True)
    keys = keys_of(loader(ds, workers=2))
    assert len(keys) == NUM  # every worker still gives its share: no rank waits for another
    assert ds.num_skipped_images == 15 - sum(k.startswith('train-000002') for k in keys)
    assert ds.num_skipped_images > 0


def test_corrupt_member_and_missing_shard(shards, tmp_path):
    bad = tmp_path / 'bad'
    bad.mkdir()
    for f in shards.glob('*'):
        (bad / f.name).write_bytes(f.read_bytes())
    victim = None
    with tarfile.open(shards / 'train-000001.tar') as src, tarfile.open(bad / 'train-000001.tar', 'w') as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name.endswith('.jpg') and victim is None:
                victim = m.name.split('.')[0]
                data = data[:20]  # a JPEG header and nothing else
            m.size = len(data)
            dst.addfile(m, io.BytesIO(data))
    fast = [dict(type='LoadImageRandomResizedCrop', scale=16), dict(type='PackInputs')]
    ds = dataset(bad, shuffle=False, pipeline=fast)
    with pytest.raises(RuntimeError, match=rf'shard train-000001\.tar, key {victim}'):
        list(loader(ds, workers=0))
    skipping = dataset(bad, shuffle=False, pipeline=fast, skip_bad_images=True)
    assert len(keys_of(loader(skipping, workers=2))) == NUM and skipping.num_skipped_images == 1
    n, problems = verify_shards([str(bad / f'train-{i:06d}.tar') for i in range(7)], str(bad / 'manifest.json'))
    assert n == NUM
    assert [(p[0], p[1]) for p in problems] == [('train-000001.tar', victim), ('train-000001.tar', '-')]
    assert 'SHA-256' in problems[1][2]
    (bad / 'train-000001.tar').write_bytes((shards / 'train-000001.tar').read_bytes())
    (bad / 'train-000005.tar').unlink()
    with pytest.raises(OSError, match=r'shard .*train-000005\.tar: cannot open it'):
        list(loader(dataset(bad, shuffle=False), workers=1))
    skipping = dataset(bad, shuffle=False, skip_bad_images=True)
    keys = keys_of(loader(skipping, workers=2))
    assert len(keys) == NUM and skipping.num_skipped_images == 15  # the missing shard's samples, replaced
    assert not any(k.startswith('train-000005') for k in keys)
    with pytest.raises(FileNotFoundError, match=r'train-000005\.tar'):
        WebDataset(urls=PATTERN, data_root=str(bad), manifest='')  # counting the shards needs them all


def test_pipe_urls_and_counting_without_manifest(shards):
    urls = [f'pipe:cat {shards}/train-{i:06d}.tar' for i in range(7)]
    manifest = str(shards / 'manifest.json')
    ds = WebDataset(urls=urls, manifest=manifest, shuffle=False, pipeline=[dict(type='PackInputs')])
    counted = WebDataset(urls=str(shards / PATTERN), shuffle=False, pipeline=[dict(type='PackInputs')])
    assert counted.shard_sizes() == [15] * 6 + [10]
    piped = [k.split('/')[-2:] for k in keys_of(loader(ds, workers=2))]
    assert piped == [k.split('/') for k in keys_of(loader(counted, workers=2))]


def test_converter_and_verify_tools(shards, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = tmp_path / 'tool'
    run = subprocess.run(
        [sys.executable, 'tools/dataset_converters/images_to_shards.py', str(shards.parent / 'folder'), str(out)]
        + ['--split', 'train', '--samples-per-shard', '40', '--workers', '2'],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert '3 shards, 100 samples' in run.stdout
    _truncate(out, tmp_path / 'cut')
    run = subprocess.run(
        [sys.executable, 'tools/misc/verify_dataset.py', '--shards', str(tmp_path / 'cut/train-{000000..000002}.tar')],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1
    assert 'train-000002.tar' in run.stdout and 'truncated' in run.stdout


def test_benchmark_files_vs_shards_reads_the_same_images(shards, tmp_path):
    from mimlab.analysis.pipeline_timing import benchmark_files_vs_shards

    paths = sorted(str(p) for p in (shards.parent / 'folder/train').rglob('*.jpg'))[:24]
    pipeline = [dict(type='LoadImageRandomResizedCrop', scale=16), dict(type='PackInputs')]
    out = benchmark_files_vs_shards(pipeline, paths, str(tmp_path / 'b'), batch_size=8, samples_per_shard=10)
    assert out['files']['num_images'] == out['shards']['num_images'] == 24
    assert out['shards']['images_per_s'] > 0 and (tmp_path / 'b/train-000002.tar').is_file()


def test_gpu_decode_packer_and_json_labels(tmp_path):
    import json

    import cv2

    img = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    cv2_jpeg = cv2.imencode('.jpg', img)[1].tobytes()
    jpg = {'jpg': cv2_jpeg, 'json': json.dumps(dict(label=7, caption='x'))}
    write_shards([(f'{i:03d}', jpg) for i in range(4)], str(tmp_path), samples_per_shard=2, progress=False)
    ds = WebDataset(
        urls='train-{000000..000001}.tar',
        data_root=str(tmp_path),
        shuffle=False,
        pipeline=[dict(type='PackEncodedWithCrop', scale=16)],
    )
    out = next(iter(ds))
    assert bytes(out['inputs'].numpy()) == cv2_jpeg  # the member's bytes, for the device decoder
    assert out['data_samples'].ori_shape == (40, 56) and int(out['data_samples'].gt_label) == 7


@pytest.mark.parametrize('ext', ['png', 'webp'])
def test_non_jpeg_members_take_the_slower_path_with_the_same_pixels_as_files(tmp_path, ext):
    import cv2
    from mmengine.registry import DefaultScope

    from mimlab.registry import TRANSFORMS

    img, _ = BuiltinDataset(num_samples=1, img_size=40, lazy_init=True).render(0)
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == 'webp' else []  # 101: lossless WebP
    data = cv2.imencode(f'.{ext}', img, params)[1].tobytes()
    (tmp_path / f'a.{ext}').write_bytes(data)
    write_shards([('000', {ext: data, 'cls': '1'})], str(tmp_path / 's'), progress=False)
    fast = [dict(type='LoadImageRandomResizedCrop', scale=16, reduced_decode=True), dict(type='PackInputs')]
    ds = WebDataset(
        urls='train-000000.tar', data_root=str(tmp_path / 's'), shuffle=False, pipeline=fast, seed_samples=False
    )  # the crop drawn from numpy's global generator, seeded below for both
    with DefaultScope.overwrite_default_scope('mimlab'):
        t = TRANSFORMS.build(fast[0])
    np.random.seed(0)
    from_shard = next(iter(ds))['inputs'].numpy().transpose(1, 2, 0)
    np.random.seed(0)
    from_file = t(dict(img_path=str(tmp_path / f'a.{ext}')))['img']
    assert np.array_equal(from_shard, from_file) and from_shard.std() > 0
    plain = WebDataset(urls='train-000000.tar', data_root=str(tmp_path / 's'), pipeline=[dict(type='PackInputs')])
    assert np.array_equal(next(iter(plain))['inputs'].numpy(), img.transpose(2, 0, 1))  # lossless: the rendered image


def test_positions_left_by_an_uneven_split_roll_over_into_the_next_epoch(shards):
    ds = dataset(shards)  # one process: R = 1; three "ranks" of 33 over 100 samples, by hand
    ds.world_size, seen = 3, []
    for epoch in range(3):  # 3 epochs x 3 ranks x 33 = 297 positions: 2.97 passes, nothing dropped
        for rank in range(3):
            ds.rank = rank
            ds.set_epoch(epoch)
            seen += [s['data_samples'].img_path for s in ds]
    assert len(seen) == 297
    # passes 0 and 1 read every sample once each, pass 2 97 of them (buffers mix across a pass boundary, so count)
    assert sorted(Counter(seen).values()) == [2] * 3 + [3] * 97


def test_a_leading_load_image_from_file_is_replaced_by_decoding_the_member(shards):
    import cv2

    ds = dataset(shards, shuffle=False, pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    sample = next(iter(ds))
    name, member = sample['data_samples'].img_path.split('/')
    with tarfile.open(shards / name) as tar:
        data = tar.extractfile(member).read()
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # what LoadImageFromFile gives
    assert np.array_equal(sample['inputs'].numpy(), expected.transpose(2, 0, 1))


def test_augmentations_are_seeded_per_sample_whatever_the_workers(shards):
    pipeline = [dict(type='LoadImageRandomResizedCrop', scale=16, flip_prob=0.5), dict(type='PackInputs')]
    crops = {}
    for workers in (0, 1, 3):
        ds = dataset(shards, pipeline=pipeline)
        ds.set_epoch(1)
        samples = [s for b in loader(ds, batch_size=4, workers=workers) for s in b]
        crops[workers] = {s['data_samples'].img_path: s['inputs'].numpy().tobytes() for s in samples}
    assert crops[0] != {} and len(crops[0]) == NUM
    assert len(set(crops[0].values())) > NUM // 2  # they differ from sample to sample
    # another worker count: the samples come in another order but each gets the same crop and flip (same pixels)
    assert crops[0] == crops[1] and crops[0] == crops[3]
    state = np.random.get_state()[1].copy()
    list(dataset(shards, pipeline=pipeline))  # in the main process: its generators are left as they were
    assert np.array_equal(np.random.get_state()[1], state)
